"""Make the serving process hard to read: no core dumps, not dumpable (DESIGN.md invariant 5)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import resource
import sys

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


def harden_process() -> dict[str, bool]:
    """Disable core dumps and ptrace-style reads of this process's memory by other users'
    processes. Returns what took effect; failures are logged, never silent."""
    result = {"core_dumps_off": False, "not_dumpable": False}
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        result["core_dumps_off"] = True
    except (ValueError, OSError) as exc:
        log.warning("could not disable core dumps: %s", exc)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0:
            result["not_dumpable"] = libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0
        else:
            log.warning("could not make the process non-dumpable: errno %d", ctypes.get_errno())
    return result
