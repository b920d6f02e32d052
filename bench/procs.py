"""Child processes of one benchmark run: start, wait until ready, measure memory, stop.

Every server is started in a session of its own, so stopping it signals exactly the process group
this harness created (the server and any workers it forked) and nothing else on the machine.
`Children` is a context manager: leaving it (normally, by an exception, or by Ctrl-C) stops every
child that is still running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

STOP_GRACE_S = 10.0
POLL_INTERVAL_S = 0.1
LOOPBACK = "127.0.0.1"


class StartFailed(Exception):
    """A server did not become ready; the message says why, for the report's table."""


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: ours without proxy settings, so loopback stays loopback."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    if extra:
        env.update(extra)
    return env


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def exited(self) -> int | None:
        return self.proc.poll()

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        tail = [line.strip() for line in text.splitlines() if line.strip()]
        return " | ".join(tail[-lines:])


class Children:
    """Owns every process the harness starts."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._running: list[Child] = []

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    def start(
        self, name: str, argv: list[str], env: Mapping[str, str], cwd: Path | None = None
    ) -> Child:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self._log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        child = Child(name, proc, log_path)
        self._running.append(child)
        return child

    def running(self) -> list[Child]:
        return list(self._running)

    def find(self, name: str) -> Child | None:
        return next((c for c in self._running if c.name == name), None)

    def stop(self, child: Child) -> None:
        """SIGTERM the child's process group, then SIGKILL it if it lingers."""
        if child in self._running:
            self._running.remove(child)
        if child.proc.poll() is None:
            _signal_group(child.proc.pid, signal.SIGTERM)
            try:
                child.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                _signal_group(child.proc.pid, signal.SIGKILL)
                child.proc.wait(timeout=STOP_GRACE_S)
        # Workers that outlived their parent are still in the group the harness created.
        _signal_group(child.proc.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for child in list(reversed(self._running)):
            with contextlib.suppress(Exception):
                self.stop(child)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def http_request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
    """One request with the standard library; an HTTP error status is returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as err:
        return int(err.code), bytes(err.read())


def wait_ready(
    child: Child,
    url: str,
    timeout_s: float,
    method: str = "GET",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Poll `url` until it answers 2xx; raise StartFailed if the child exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        code = child.exited()
        if code is not None:
            raise StartFailed(f"{child.name} exited with code {code}: {child.log_tail(1)}")
        try:
            status, _ = http_request(method, url, body, headers, timeout=2.0)
        except OSError as exc:
            last = type(exc).__name__
        else:
            if 200 <= status < 300:
                return
            last = f"HTTP {status}"
        time.sleep(POLL_INTERVAL_S)
    raise StartFailed(f"{child.name} not ready after {timeout_s:.0f} s ({last})")


def tree_rss_bytes(pid: int) -> int:
    """Resident memory (VmRSS) of `pid` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 (ppid) follows the command name, which is in parentheses and may hold spaces.
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry.name)] = int(fields[1])
    tree = {pid}
    grew = True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in tree and child not in tree:
                tree.add(child)
                grew = True
    return sum(_vm_rss_bytes(p) for p in tree)


def _vm_rss_bytes(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
