"""``sealgate serve --workers N``: N serving processes on one port.

The model is the replicas' (docs/deploy.md, three replicas behind one Service): each worker is a
whole gateway with its own event loop, connection pool, caches and spend outbox, and the workers
share what must be exact through the same services replicas share: PostgreSQL (``storage.url``:
keys, teams, budgets, spend) and Redis (``governance.counters: redis``: the RPM/TPM windows and
the budget reservations, one atomic Lua step each). So a limit of 25 requests a minute admits 25,
whichever worker takes them. Embedded mode keeps its counters in process memory and its
database in one SQLite file, which N processes would each count on their own: ``check_shared``
refuses it with the reason, rather than serve N times the limit.

The supervisor (the process ``sealgate serve`` started) does the start-up checks once, then
forks the workers before any thread or event loop exists. Each worker binds its own listening
socket to the port with ``SO_REUSEPORT``, so the kernel spreads new connections over the
workers (by a hash of the connection's addresses; Linux lets only processes of the same user
join a port so). Each has its own data directory, ``<data-dir>/worker-<i>`` (its lock and its
spend outbox file). The supervisor passes SIGTERM, SIGINT and SIGHUP (a config reload) on to
every worker; when one worker ends, it stops the others and exits with the worst status.

Scaling: one worker is one core's worth of Python (the GIL); N workers use up to N cores, less
whatever the load generator, the upstream client and the database take of them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from gateway.config import GatewayConfig
from gateway.errors import ConfigError

MAX_WORKERS = 64
STOP_SECONDS = 15.0  # the workers' graceful shutdown is 10 s (serve.py), then a margin
BACKLOG = 2048


@dataclass(frozen=True)
class Worker:
    """Which worker this process is (index 0 of 1: the only one, no supervisor)."""

    index: int = 0
    count: int = 1
    sockets: list[socket.socket] | None = None

    def data_dir(self, base: Path) -> Path:
        return base if self.count == 1 else base / f"worker-{self.index}"

    def facts(self) -> dict[str, object]:
        return {} if self.count == 1 else {"worker": f"{self.index} of {self.count}"}


def check_shared(config: GatewayConfig, workers: int, source: str) -> None:
    """Refuse a worker count the configuration cannot keep exact."""
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError("--workers", str(workers), f"must be 1 to {MAX_WORKERS}")
    if workers == 1:
        return
    missing = []
    if not config.storage.url:
        missing.append("storage.url (PostgreSQL; the embedded SQLite file is one process's)")
    if config.governance.counters != "redis":
        missing.append(
            "governance.counters: redis (in-process counters would let each worker admit "
            "the whole limit)"
        )
    if missing:
        raise ConfigError(
            source,
            "--workers",
            f"{workers} workers need state the workers share, exactly: set "
            + " and ".join(missing)
            + "; embedded mode serves with one worker",
        )


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on the port that other workers of this user may bind as well."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(False)
    return sock


def fork(workers: int, host: str, port: int) -> Worker:
    """Start ``workers`` processes. Returns in each of them, with its place and its socket; the
    supervisor never returns: it waits for the workers and exits with their worst status."""
    pids: dict[int, int] = {}
    for index in range(1, workers + 1):
        pid = os.fork()
        if pid == 0:
            try:
                return Worker(index, workers, [listen(host, port)])
            except OSError as exc:
                print(f"sealgate: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
                os._exit(2)
        pids[pid] = index
    raise SystemExit(_supervise(pids))


def _supervise(pids: dict[int, int]) -> int:
    stopping = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if signum != signal.SIGHUP:
            stopping = True
        for pid in pids:
            _signal(pid, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    worst = 0
    deadline: float | None = None
    while pids:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            if deadline is not None and time.monotonic() > deadline:
                for left in pids:
                    _signal(left, signal.SIGKILL)
            time.sleep(0.05)
            continue
        index = pids.pop(pid, None)
        code = os.waitstatus_to_exitcode(status)
        if index is not None and not stopping:
            print(f"sealgate: worker {index} ended ({code}); stopping the others", file=sys.stderr)
        worst = max(worst, code if code > 0 else (1 if code < 0 and not stopping else 0))
        if not stopping:
            stopping = True
            for left in pids:
                _signal(left, signal.SIGTERM)
        if deadline is None:
            deadline = time.monotonic() + STOP_SECONDS
    return worst


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
