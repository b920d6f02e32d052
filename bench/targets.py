"""What the harness measures, and how each target is started.

A target's `start` function starts its server(s) as children of the run and returns a `Started`:
the URL wrk hits, the bearer token it sends, the process whose tree's memory is reported, and the
server's version. It raises `StartFailed` with a reason when the target cannot be measured; the
report then shows "not measured: <reason>" for that row.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from bench.procs import Child, Children, child_env, free_port, wait_ready
from bench.upstream import nginx_binary, nginx_version
from bench.wrk import REQUEST_BODY

CHAT_PATH = "/v1/chat/completions"
FLOOR_READY_TIMEOUT_S = 30.0


@dataclass
class RunContext:
    repo: Path
    work: Path
    python: str
    upstream_port: int
    sealgate_config: Path
    # Another Sealgate source tree (a checkout of an earlier commit) for the `sealgate-baseline`
    # target: the same spine config, served by that tree's code, in the same run.
    baseline: Path | None = None
    # The interpreter a new venv is made from (the one beneath the dev venv).
    base_python: str = field(
        default_factory=lambda: getattr(sys, "_base_executable", sys.executable)
    )
    # A made-up provider key: the upstream ignores it, but every proxy must send one.
    upstream_key: str = field(default_factory=lambda: "bench-upstream-" + secrets.token_hex(8))

    @property
    def upstream_base(self) -> str:
        return f"http://127.0.0.1:{self.upstream_port}"


@dataclass
class Started:
    url: str
    auth: str
    rss_child: Child | None
    version: str
    notes: list[str] = field(default_factory=list)


StartFn = Callable[[RunContext, Children], Started]


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    start: StartFn


def chat_body() -> bytes:
    return json.dumps(REQUEST_BODY).encode()


def dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def start_upstream_direct(ctx: RunContext, children: Children) -> Started:
    """nginx itself is already running for the whole run; wrk hits it without a proxy."""
    upstream = children.find("upstream")
    binary = nginx_binary()
    return Started(
        url=ctx.upstream_base + CHAT_PATH,
        auth="",
        rss_child=upstream,
        version=f"{nginx_version(binary) if binary else 'nginx'}, 1 worker, fixed JSON body",
    )


def _start_floor(module: str, ctx: RunContext, children: Children) -> Started:
    port = free_port()
    env = child_env(
        {
            "BENCH_UPSTREAM_URL": ctx.upstream_base + CHAT_PATH,
            "BENCH_UPSTREAM_KEY": ctx.upstream_key,
            "PYTHONPATH": str(ctx.repo),
        }
    )
    argv = [
        ctx.python,
        "-m",
        "uvicorn",
        f"bench.{module}:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--lifespan",
        "on",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    child = children.start(module.replace("_", "-"), argv, env, cwd=ctx.repo)
    url = f"http://127.0.0.1:{port}{CHAT_PATH}"
    wait_ready(child, url, FLOOR_READY_TIMEOUT_S, method="POST", body=chat_body())
    return Started(url=url, auth="", rss_child=child, version="")


def start_floor_aiohttp(ctx: RunContext, children: Children) -> Started:
    started = _start_floor("floor_aiohttp", ctx, children)
    started.version = f"aiohttp {dist_version('aiohttp')}, uvicorn {dist_version('uvicorn')}"
    return started


def start_floor_httpx(ctx: RunContext, children: Children) -> Started:
    started = _start_floor("floor_httpx", ctx, children)
    started.version = f"httpx {dist_version('httpx')}, uvicorn {dist_version('uvicorn')}"
    return started
