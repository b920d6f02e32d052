"""The load generator: wrk with a Lua script, and the parser of what that script reports.

The script sends the same chat-completion POST on every request, with the Authorization header
taken from the environment variable BENCH_AUTH (so a key is never written to a file). Its `done`
hook prints one line, `BENCH_JSON {...}`, with wrk's exact counters and latency percentiles in
microseconds; `parse_wrk_output` reads that line and nothing else of wrk's text.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

MARKER = "BENCH_JSON "
WRK_TIMEOUT_S = 5
REQUEST_BODY = {
    "model": "bench-model",
    "messages": [{"role": "user", "content": "Say hello."}],
    "max_tokens": 16,
}

LUA_SCRIPT = """\
-- Written by bench/wrk.py for one benchmark run.
wrk.method = "POST"
wrk.body = [[%BODY%]]
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH")
if auth ~= nil and auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%MARKER%{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_us":%.0f,"p99_us":%.0f,"mean_us":%.1f,"max_us":%.0f,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


class WrkFailed(Exception):
    """wrk did not run or did not report; the message says why."""


@dataclass(frozen=True)
class WrkResult:
    connections: int
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors

    def as_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "rps": round(self.rps, 1), "errors": self.errors}


def write_script(path: Path) -> Path:
    body = json.dumps(REQUEST_BODY, separators=(",", ":"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(LUA_SCRIPT.replace("%BODY%", body).replace("%MARKER%", MARKER))
    return path


def parse_wrk_output(text: str, connections: int) -> WrkResult:
    """The result of one wrk run, from the line its `done` hook printed."""
    for line in text.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            break
    else:
        raise WrkFailed("wrk printed no BENCH_JSON line")
    socket_errors = sum(int(data[k]) for k in ("connect", "read", "write", "timeout"))
    return WrkResult(
        connections=connections,
        requests=int(data["requests"]),
        duration_s=int(data["duration_us"]) / 1e6,
        p50_ms=float(data["p50_us"]) / 1000,
        p99_ms=float(data["p99_us"]) / 1000,
        mean_ms=float(data["mean_us"]) / 1000,
        max_ms=float(data["max_us"]) / 1000,
        non_2xx=int(data["status"]),
        socket_errors=socket_errors,
    )


def run_wrk(
    url: str,
    connections: int,
    duration_s: float,
    script: Path,
    env: Mapping[str, str],
) -> WrkResult:
    """One wrk run with one thread; bounded by its duration plus a margin."""
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={WRK_TIMEOUT_S}s",
        "-s",
        str(script),
        url,
    ]
    try:
        done = subprocess.run(
            argv,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=duration_s + 30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WrkFailed(f"wrk did not run: {exc}") from exc
    if done.returncode != 0:
        raise WrkFailed(f"wrk exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return parse_wrk_output(done.stdout, connections)
