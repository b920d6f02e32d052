"""`python -m bench.streaming`: the SSE bench point, Sealgate against a streaming floor.

    python -m bench.streaming [--rounds 3] [--requests 300] [--seconds 8] [--streams 1000]

The upstream is nginx answering a fixed 53-event stream (a role chunk, 50 content chunks, a
finish chunk, `[DONE]`; bench/upstream.py). Two targets, interleaved round by round: the
streaming floor (bench/floor_stream.py: aiohttp, one ASGI message per event, nothing else) and
the Sealgate spine with virtual-key auth (bench/sealgate-stream.yaml.tmpl). Per target and round:

- time to first byte at one connection: `--requests` streams one after another on one
  keep-alive connection; the time from the request's last byte written to the first byte of
  the body (the first event), median and p99, and the time to the whole stream;
- events per second at 16 connections: wrk for `--seconds` with `"stream": true`, its req/s
  times the events one stream carries.

Then, once, memory per open stream: `--streams` streams opened at once against Sealgate whose
upstream sends the same stream at 20 bytes/s (so they stay open), the server's RSS before,
with them all open (every one has its status line), and 3 s after the client closed them.
Prints markdown; the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench import wrk
from bench.__main__ import BENCH_DIR, REPO, UPSTREAM_READY_TIMEOUT_S, ensure_tools
from bench.procs import Children, StartFailed, child_env, free_port, tree_rss_bytes, wait_ready
from bench.sealgate_target import _start
from bench.targets import CHAT_PATH, RunContext, Started, chat_body
from bench.upstream import nginx_argv, nginx_binary, write_config

STREAM_TEMPLATE = BENCH_DIR / "sealgate-stream.yaml.tmpl"
STREAM_BODY = {**wrk.REQUEST_BODY, "stream": True}
CLIENT_TIMEOUT_S = 30.0


@dataclass
class Point:
    ttfb_ms: list[float]
    total_ms: list[float]
    events: int
    rps16: float
    errors: int


def body_bytes() -> bytes:
    return json.dumps(STREAM_BODY, separators=(",", ":")).encode()


def request_bytes(url: str, auth: str) -> bytes:
    parts = urlsplit(url)
    body = body_bytes()
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    )
    if auth:
        head += f"Authorization: Bearer {auth}\r\n"
    return (head + "\r\n").encode() + body


async def read_head(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" not in head.lower():
        raise RuntimeError("stream answer is not chunked")
    return status


async def one_stream(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[float, float, int]:
    """One stream on an open connection: (ms to the first body byte, ms to the end, events)."""
    writer.write(request)
    await writer.drain()
    sent = time.perf_counter()
    status = await read_head(reader)
    first: float | None = None
    events = 0
    while True:
        size = int((await reader.readline()).strip(), 16)
        if size == 0:
            await reader.readline()
            break
        data = await reader.readexactly(size + 2)
        if first is None:
            first = time.perf_counter()
        events += data.count(b"\n\n")
    if status != 200 or first is None:
        raise RuntimeError(f"stream answered {status}")
    done = time.perf_counter()
    return (first - sent) * 1000, (done - sent) * 1000, events


async def sequential(url: str, auth: str, count: int) -> tuple[list[float], list[float], int]:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    request = request_bytes(url, auth)
    ttfb: list[float] = []
    total: list[float] = []
    events = 0
    try:
        for _ in range(count):
            first, whole, events = await asyncio.wait_for(
                one_stream(reader, writer, request), CLIENT_TIMEOUT_S
            )
            ttfb.append(first)
            total.append(whole)
    finally:
        writer.close()
    return ttfb, total, events


async def hold_open(url: str, auth: str, count: int, pid: int) -> tuple[int, int, int]:
    """RSS (bytes) before, with ``count`` streams open, and 3 s after closing them."""
    before = tree_rss_bytes(pid)
    parts = urlsplit(url)
    request = request_bytes(url, auth)
    opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def open_one() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        opened.append((reader, writer))
        writer.write(request)
        await writer.drain()

    batch = 50  # connected in batches, so the listen backlog never overflows
    for start in range(0, count, batch):
        await asyncio.wait_for(
            asyncio.gather(*(open_one() for _ in range(min(batch, count - start)))),
            CLIENT_TIMEOUT_S,
        )
    statuses = await asyncio.wait_for(
        asyncio.gather(*(read_head(reader) for reader, _ in opened)), CLIENT_TIMEOUT_S * 2
    )
    if any(status != 200 for status in statuses):
        raise RuntimeError("a held stream was refused")
    await asyncio.sleep(2)
    writers = [writer for _, writer in opened]
    held = tree_rss_bytes(pid)
    for writer in writers:
        writer.close()
    await asyncio.sleep(3)
    after = tree_rss_bytes(pid)
    return before, held, after


def write_stream_script(path: Path) -> Path:
    body = json.dumps(STREAM_BODY, separators=(",", ":"))
    path.write_text(wrk.LUA_SCRIPT.replace("%BODY%", body).replace("%MARKER%", wrk.MARKER))
    return path


def start_floor(ctx: RunContext, children: Children) -> Started:
    port = free_port()
    env = child_env(
        {
            "BENCH_UPSTREAM_URL": ctx.upstream_base + "/sse50" + CHAT_PATH,
            "BENCH_UPSTREAM_KEY": ctx.upstream_key,
            "PYTHONPATH": str(ctx.repo),
        }
    )
    argv = [
        ctx.python, "-m", "uvicorn", "bench.floor_stream:app", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--loop", "uvloop", "--http", "httptools",
        "--lifespan", "on", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    child = children.start("floor-stream", argv, env, cwd=ctx.repo)
    url = f"http://127.0.0.1:{port}{CHAT_PATH}"
    wait_ready(child, url, 30.0, method="POST", body=body_bytes())
    return Started(url=url, auth="", rss_child=child, version="aiohttp, uvicorn")


def start_sealgate(ctx: RunContext, children: Children, path: str = "sse50") -> Started:
    name = f"sealgate-stream-{path}"
    return _start(ctx, children, name, STREAM_TEMPLATE, False, more={"STREAM_PATH": path})


def measure(started: Started, args: argparse.Namespace, script: Path) -> Point:
    ttfb, total, events = asyncio.run(sequential(started.url, started.auth, args.requests))
    env = child_env({"BENCH_AUTH": started.auth})
    wrk.run_wrk(started.url, 16, 2, script, env)
    point = wrk.run_wrk(started.url, 16, args.seconds, script, env)
    return Point(ttfb, total, events, point.requests / point.duration_s, point.errors)


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.streaming", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=2, help="open/close cycles of the streams")
    args = parser.parse_args(argv)
    ensure_tools()
    nginx = nginx_binary()
    assert nginx is not None
    work = BENCH_DIR / ".work"
    work.mkdir(parents=True, exist_ok=True)
    script = write_stream_script(work / "stream.lua")
    ctx = RunContext(
        repo=REPO,
        work=work,
        python=sys.executable,
        upstream_port=free_port(),
        sealgate_config=STREAM_TEMPLATE,
    )
    load_before = os.getloadavg()
    results: dict[str, list[Point]] = {"floor": [], "sealgate": []}
    memory: list[tuple[int, int, int]] = []
    with Children(work / "logs") as children:
        conf = write_config(work, ctx.upstream_port)
        upstream = children.start("upstream", nginx_argv(nginx, work, conf), os.environ)
        try:
            wait_ready(
                upstream, ctx.upstream_base + CHAT_PATH, UPSTREAM_READY_TIMEOUT_S, "POST",
                chat_body(),
            )  # fmt: skip
            for number in range(args.rounds):
                print(f"bench.streaming: round {number + 1}", file=sys.stderr, flush=True)
                for key, start in (("floor", start_floor), ("sealgate", start_sealgate)):
                    running = set(id(c) for c in children.running())
                    started = start(ctx, children)
                    results[key].append(measure(started, args, script))
                    for child in children.running():
                        if id(child) not in running:
                            children.stop(child)
            if args.streams:
                print("bench.streaming: open streams", file=sys.stderr, flush=True)
                started = start_sealgate(ctx, children, "trickle")
                assert started.rss_child is not None
                try:
                    for _ in range(args.cycles):  # a second cycle: reused, or grown?
                        memory.append(
                            asyncio.run(
                                hold_open(
                                    started.url,
                                    started.auth,
                                    args.streams,
                                    started.rss_child.proc.pid,
                                )
                            )
                        )
                except (OSError, RuntimeError, TimeoutError) as exc:
                    print(f"bench.streaming: open streams not measured: {exc!r}", file=sys.stderr)
        except StartFailed as exc:
            raise SystemExit(f"bench.streaming: {exc}") from None
    print_report(results, memory, args, load_before, os.getloadavg())
    return 0


def print_report(
    results: dict[str, list[Point]],
    memory: list[tuple[int, int, int]],
    args: argparse.Namespace,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    print("## Streaming: a 53-event SSE answer\n")
    print(
        f"Load average {[round(x, 2) for x in load_before]} before, "
        f"{[round(x, 2) for x in load_after]} after; {args.rounds} interleaved rounds; median "
        "round per cell (range in brackets).\n"
    )
    if not all(results.values()):
        results = {}
    print("| target | TTFB p50 ms @1 | TTFB p99 ms @1 | stream ms p50 @1 | events/s @16 | errors |")
    print("|---|---|---|---|---|---|")
    summary: dict[str, tuple[float, float]] = {}
    for key, points in results.items():
        ttfb = [statistics.median(pt.ttfb_ms) for pt in points]
        p99 = [p(pt.ttfb_ms, 0.99) for pt in points]
        whole = [statistics.median(pt.total_ms) for pt in points]
        eps = [pt.rps16 * pt.events for pt in points]
        errors = sum(pt.errors for pt in points)
        summary[key] = (statistics.median(ttfb), statistics.median(eps))
        print(
            f"| {key} | {statistics.median(ttfb):.3f} ({min(ttfb):.3f}-{max(ttfb):.3f}) "
            f"| {statistics.median(p99):.3f} | {statistics.median(whole):.3f} "
            f"| {statistics.median(eps):,.0f} ({min(eps):,.0f}-{max(eps):,.0f}) | {errors} |"
        )
    if summary:
        floor, sealgate = summary["floor"], summary["sealgate"]
        print(
            f"\nSealgate adds {sealgate[0] - floor[0]:.3f} ms to the time to first byte (target "
            f"at most 1 ms) and carries {sealgate[1] / floor[1]:.2f}x the floor's events per "
            "second (target at least 0.6x)."
        )
    mib = 1024 * 1024
    for number, (before, held, after) in enumerate(memory, 1):
        print(
            f"\nOpen streams, cycle {number}: RSS {before / mib:.1f} MB before, "
            f"{held / mib:.1f} MB with {args.streams} open "
            f"({(held - before) / args.streams / 1024:.1f} KB per stream), "
            f"{after / mib:.1f} MB 3 s after they closed."
        )


if __name__ == "__main__":
    sys.exit(main())
