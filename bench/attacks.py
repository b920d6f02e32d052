"""Resource attacks against a running Sealgate, measured: the gateway's memory and the latency of
``/health/live`` while each attack runs (issue 12's before and after numbers).

    .venv-dev/bin/python -m bench.attacks                    # every attack, full size
    .venv-dev/bin/python -m bench.attacks --quick            # smaller sizes, about a minute
    .venv-dev/bin/python -m bench.attacks --attacks header,unframed

Everything runs on 127.0.0.1 and is bounded in size, count and time: the gateway under test, a
hostile upstream (a thread in this process) and the attacking clients. One attack runs at a time
against a fresh gateway, while a probe asks ``/health/live`` every 20 ms on a connection of its
own and a sampler reads the gateway's resident memory (VmRSS) every 20 ms from /proc. An attack
that is over in less than ``--at-least`` seconds (10) is made again until then, so the latency
under it has samples.

| attack | what the client or the upstream does |
|---|---|
| `header` | one request whose single header line is 512 MiB (quick: 64 MiB), no credential |
| `headers` | one request with 100,000 small headers, no credential |
| `slowloris` | 200 connections that send one header line every 2 s and never finish (30 s) |
| `idle` | 200 connections that send nothing at all (20 s) |
| `body` | an authenticated call whose upstream answers 1 GiB of JSON (quick: 128 MiB) |
| `unframed` | authenticated streams whose upstream sends 64 MiB (quick: 16 MiB) and no blank line |

``unframed`` takes the two paths that parse events: an Anthropic upstream on the OpenAI API, and
an OpenAI upstream on the Anthropic API.

The report (stdout, markdown) gives per attack: what the gateway answered, its RSS before, at
peak and after, and the probe's p50, p99 and worst latency and failures. The JSON (with
``--json``) keeps every number.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.procs import Children, child_env, free_port, http_request, tree_rss_bytes, wait_ready

LOOPBACK = "127.0.0.1"
MIB = 1024 * 1024
PIECE = 256 * 1024
PROBE_EVERY_S = 0.02
PROBE_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 60.0

CONFIG = """
deployments:
  - model: huge-body
    provider: openai_compatible
    base_url: "{upstream}/v1"
    credential: env:ATTACK_UPSTREAM_KEY
    allow_private_network: true
    timeouts: {{connect: 5, read: 120, total: 300}}
  - model: unframed-gpt
    provider: openai_compatible
    base_url: "{upstream}/v1"
    credential: env:ATTACK_UPSTREAM_KEY
    allow_private_network: true
    timeouts: {{connect: 5, read: 120, total: 300}}
  - model: unframed-claude
    provider: anthropic
    upstream_model: claude-sonnet-4-20250514
    base_url: "{upstream}"
    credential: env:ATTACK_UPSTREAM_KEY
    allow_private_network: true
    timeouts: {{connect: 5, read: 120, total: 300}}
router:
  retries: 0
logging:
  level: warning
verify:
  mode: "off"
governance:
  deployments:
    huge-body/openai_compatible: {{prices: {{input: "1", output: "2"}}}}
    unframed-gpt/openai_compatible: {{prices: {{input: "1", output: "2"}}}}
"""


@dataclass
class Sizes:
    header_bytes: int = 512 * MIB
    headers_count: int = 100_000
    slow_connections: int = 200
    slow_seconds: float = 30.0
    slow_interval_s: float = 2.0
    idle_connections: int = 200
    idle_seconds: float = 20.0
    body_bytes: int = 1024 * MIB
    unframed_bytes: int = 64 * MIB

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            header_bytes=64 * MIB,
            slow_seconds=15.0,
            idle_seconds=12.0,
            body_bytes=128 * MIB,
            unframed_bytes=16 * MIB,
        )


# -- the hostile upstream ----------------------------------------------------------------------
class HostileUpstream:
    """Answers by the model asked for: ``huge-body`` a JSON body of ``body_bytes`` (chunked, no
    Content-Length), anything else a stream of ``unframed_bytes`` of ``data:`` lines with no
    blank line between them. Runs its own event loop in a thread."""

    def __init__(self, sizes: Sizes) -> None:
        self.sizes = sizes
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def __enter__(self) -> HostileUpstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        app = web.Application(client_max_size=16 * MIB)
        app.router.add_post("/v1/chat/completions", self._answer)
        app.router.add_post("/v1/messages", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body.get("model") == "huge-body":
            return await self._write(request, "application/json", self._huge_body())
        return await self._write(request, "text/event-stream", self._unframed())

    def _huge_body(self) -> Iterator[bytes]:
        yield b'{"id":"x","object":"chat.completion","choices":[{"index":0,"message":'
        yield b'{"role":"assistant","content":"'
        left = self.sizes.body_bytes
        while left > 0:
            yield b"x" * min(PIECE, left)
            left -= PIECE
        yield b'"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}'

    def _unframed(self) -> Iterator[bytes]:
        line = b"data: " + b"y" * 1018 + b"\n"
        block = line * (PIECE // len(line))
        left = self.sizes.unframed_bytes
        while left > 0:
            yield block
            left -= len(block)

    async def _write(
        self, request: web.Request, kind: str, pieces: Iterator[bytes]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": kind})
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError, RuntimeError, asyncio.CancelledError):
            for piece in pieces:
                await response.write(piece)
            await response.write_eof()
        return response


# -- the gateway under test ------------------------------------------------------------------
@dataclass
class Gateway:
    url: str
    pid: int
    key: str


@contextlib.contextmanager
def gateway(children: Children, work: Path, upstream: HostileUpstream) -> Iterator[Gateway]:
    port = free_port()
    admin = "sga-attack-" + secrets.token_urlsafe(24)
    data = Path(tempfile.mkdtemp(prefix="gateway-", dir=work))
    config = data / "config.yaml"
    config.write_text(CONFIG.format(upstream=upstream.base_url))
    env = child_env(
        {"SEALGATE_ADMIN_KEY": admin, "ATTACK_UPSTREAM_KEY": "sk-attack-" + secrets.token_hex(8)}
    )
    argv = [sys.executable, "-m", "gateway", "serve", "--host", LOOPBACK, "--port", str(port)]
    argv += ["--data-dir", str(data / "data"), "--config", str(config)]
    child = children.start(f"gateway-{port}", argv, env, cwd=data)
    url = f"http://{LOOPBACK}:{port}"
    try:
        wait_ready(child, url + "/health/live", READY_TIMEOUT_S)
        body = json.dumps({"models": ["*"]}).encode()
        headers = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}
        status, answer = http_request("POST", url + "/admin/keys", body, headers)
        if status != 201:
            raise RuntimeError(f"could not make a virtual key: {status} {answer[:200]!r}")
        yield Gateway(url, child.proc.pid, json.loads(answer)["key"])
    finally:
        children.stop(child)
        shutil.rmtree(data, ignore_errors=True)


# -- measuring ------------------------------------------------------------------------------------
@dataclass
class Watch:
    """The probe's latencies and the sampler's RSS while an attack runs."""

    latencies_s: list[float] = field(default_factory=list)
    failures: int = 0
    rss_bytes: list[int] = field(default_factory=list)


@contextlib.contextmanager
def watching(target: Gateway) -> Iterator[Watch]:
    watch = Watch()
    stop = threading.Event()
    port = int(target.url.rsplit(":", 1)[1])

    def probe() -> None:
        connection: http.client.HTTPConnection | None = None
        while not stop.is_set():
            began = time.perf_counter()
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(LOOPBACK, port, PROBE_TIMEOUT_S)
                connection.request("GET", "/health/live")
                answer = connection.getresponse()
                answer.read()
                if answer.status != 200:
                    watch.failures += 1
            except (OSError, http.client.HTTPException):
                watch.failures += 1
                if connection is not None:
                    connection.close()
                connection = None
            watch.latencies_s.append(time.perf_counter() - began)
            stop.wait(PROBE_EVERY_S)
        if connection is not None:
            connection.close()

    def sample() -> None:
        while not stop.is_set():
            watch.rss_bytes.append(tree_rss_bytes(target.pid))
            stop.wait(0.02)

    threads = [threading.Thread(target=probe, daemon=True), threading.Thread(target=sample)]
    for thread in threads:
        thread.start()
    try:
        yield watch
    finally:
        stop.set()
        for thread in threads:
            thread.join(PROBE_TIMEOUT_S + 5)


@dataclass
class Result:
    attack: str
    outcome: str
    seconds: float
    rss_before_mb: float
    rss_peak_mb: float
    rss_after_mb: float
    health_p50_ms: float
    health_p99_ms: float
    health_max_ms: float
    health_probes: int
    health_failures: int
    detail: dict[str, Any] = field(default_factory=dict)


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(
    name: str,
    target: Gateway,
    attack: Callable[[Gateway], tuple[str, dict[str, Any]]],
    at_least_s: float,
) -> Result:
    """One attack while the probe and the sampler watch; an attack that is over sooner than
    ``at_least_s`` is made again until then, so that the latency under it has samples."""
    before = tree_rss_bytes(target.pid)
    began = time.monotonic()
    repetitions = 0
    with watching(target) as watch:
        while True:
            outcome, detail = attack(target)
            repetitions += 1
            if time.monotonic() - began >= at_least_s:
                break
    seconds = time.monotonic() - began
    detail["repetitions"] = repetitions
    time.sleep(2)
    after = tree_rss_bytes(target.pid)
    ms = [s * 1000 for s in watch.latencies_s]
    return Result(
        attack=name,
        outcome=outcome,
        seconds=round(seconds, 1),
        rss_before_mb=round(before / MIB, 1),
        rss_peak_mb=round(max(watch.rss_bytes, default=before) / MIB, 1),
        rss_after_mb=round(after / MIB, 1),
        health_p50_ms=round(statistics.median(ms), 2) if ms else float("nan"),
        health_p99_ms=round(_quantile(ms, 0.99), 2),
        health_max_ms=round(max(ms, default=float("nan")), 2),
        health_probes=len(ms),
        health_failures=watch.failures,
        detail=detail,
    )


# -- the attacks --------------------------------------------------------------------------------
def _connect(target: Gateway, timeout: float = 30.0) -> socket.socket:
    host, port = target.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def _send(sock: socket.socket, pieces: Iterator[bytes]) -> int:
    """Send until done or the server closes the connection; the bytes that went out."""
    sent = 0
    try:
        for piece in pieces:
            sock.sendall(piece)
            sent += len(piece)
    except OSError:
        pass
    return sent


def _status(sock: socket.socket) -> str:
    try:
        head = sock.recv(4096)
    except OSError as exc:
        return f"no answer ({type(exc).__name__})"
    if not head:
        return "closed without an answer"
    return head.split(b"\r\n", 1)[0].decode("latin-1")


def header_line(size: int) -> Callable[[Gateway], tuple[str, dict[str, Any]]]:
    def attack(target: Gateway) -> tuple[str, dict[str, Any]]:
        def pieces() -> Iterator[bytes]:
            yield b"GET /health/live HTTP/1.1\r\nHost: gateway\r\nX-Big: "
            left = size
            while left > 0:
                yield b"a" * min(MIB, left)
                left -= MIB
            yield b"\r\n\r\n"

        with _connect(target, timeout=120) as sock:
            sent = _send(sock, pieces())
            status = _status(sock)
        return status, {"header_bytes": size, "bytes_sent": sent}

    return attack


def many_headers(count: int) -> Callable[[Gateway], tuple[str, dict[str, Any]]]:
    def attack(target: Gateway) -> tuple[str, dict[str, Any]]:
        def pieces() -> Iterator[bytes]:
            yield b"GET /health/live HTTP/1.1\r\nHost: gateway\r\n"
            for start in range(0, count, 1000):
                yield b"".join(b"X-H%d: v\r\n" % i for i in range(start, min(count, start + 1000)))
            yield b"\r\n"

        with _connect(target, timeout=60) as sock:
            sent = _send(sock, pieces())
            status = _status(sock)
        return status, {"headers": count, "bytes_sent": sent}

    return attack


def _open_count(socks: list[socket.socket]) -> int:
    """How many of ``socks`` the server has not closed (a closed one reads EOF or fails)."""
    still = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            still += 1
            continue
        except OSError:
            continue
        finally:
            sock.setblocking(True)
        if data and not data.startswith(b"HTTP/"):
            still += 1
    return still


def slowloris(
    count: int, seconds: float, interval: float
) -> Callable[[Gateway], tuple[str, dict[str, Any]]]:
    def attack(target: Gateway) -> tuple[str, dict[str, Any]]:
        socks = [_connect(target) for _ in range(count)]
        opened_at = time.monotonic()
        open_over_time = []
        try:
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: gateway\r\n")
            step = 0
            while time.monotonic() - opened_at < seconds:
                time.sleep(interval)
                step += 1
                for sock in socks:
                    with contextlib.suppress(OSError):
                        sock.sendall(b"X-Slow-%d: s\r\n" % step)
                open_over_time.append((round(time.monotonic() - opened_at), _open_count(socks)))
            still = _open_count(socks)
        finally:
            for sock in socks:
                sock.close()
        return f"{still} of {count} still open after {seconds:.0f} s", {"open": open_over_time}

    return attack


def idle(count: int, seconds: float) -> Callable[[Gateway], tuple[str, dict[str, Any]]]:
    def attack(target: Gateway) -> tuple[str, dict[str, Any]]:
        socks = [_connect(target) for _ in range(count)]
        opened_at = time.monotonic()
        open_over_time = []
        try:
            while time.monotonic() - opened_at < seconds:
                time.sleep(2)
                open_over_time.append((round(time.monotonic() - opened_at), _open_count(socks)))
            still = _open_count(socks)
        finally:
            for sock in socks:
                sock.close()
        return f"{still} of {count} still open after {seconds:.0f} s", {"open": open_over_time}

    return attack


def _call(
    target: Gateway, path: str, body: dict[str, Any], timeout: float
) -> tuple[str, dict[str, Any]]:
    port = int(target.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    payload = json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {target.key}", "Content-Type": "application/json"}
    began = time.monotonic()
    try:
        connection.request("POST", path, payload, headers)
        answer = connection.getresponse()
        size, tail = 0, b""
        while piece := answer.read(PIECE):
            size += len(piece)
            tail = (tail + piece)[-300:]
        outcome = f"{answer.status}, {size / MIB:.1f} MiB"
        detail = {"status": answer.status, "bytes": size, "tail": tail.decode("latin-1")}
    except (OSError, http.client.HTTPException) as exc:
        outcome, detail = f"failed: {type(exc).__name__}", {}
    finally:
        connection.close()
    detail["seconds"] = round(time.monotonic() - began, 2)
    return outcome, detail


def huge_body(target: Gateway) -> tuple[str, dict[str, Any]]:
    body = {"model": "huge-body", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    return _call(target, "/v1/chat/completions", body, timeout=300)


def unframed(target: Gateway) -> tuple[str, dict[str, Any]]:
    outcomes, details = [], {}
    for path, model in (
        ("/v1/chat/completions", "unframed-claude"),
        ("/v1/messages", "unframed-gpt"),
    ):
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
        outcome, detail = _call(target, path, {**body, "stream": True}, timeout=120)
        outcomes.append(f"{path} ({model}): {outcome} in {detail['seconds']} s")
        details[path] = detail
    return "; ".join(outcomes), details


def attacks(sizes: Sizes) -> dict[str, Callable[[Gateway], tuple[str, dict[str, Any]]]]:
    return {
        "header": header_line(sizes.header_bytes),
        "headers": many_headers(sizes.headers_count),
        "slowloris": slowloris(sizes.slow_connections, sizes.slow_seconds, sizes.slow_interval_s),
        "idle": idle(sizes.idle_connections, sizes.idle_seconds),
        "body": huge_body,
        "unframed": unframed,
    }


# -- the command ----------------------------------------------------------------------------------
def table(results: list[Result]) -> str:
    lines = [
        "| attack | gateway answered | s | RSS MB before / peak / after "
        "| /health/live p50 / p99 / max ms | probes (failed) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        times = r.detail.get("repetitions", 1)
        outcome = f"{r.outcome} (x{times})" if times > 1 else r.outcome
        lines.append(
            f"| {r.attack} | {outcome} | {r.seconds} | {r.rss_before_mb} / {r.rss_peak_mb} / "
            f"{r.rss_after_mb} | {r.health_p50_ms} / {r.health_p99_ms} / {r.health_max_ms} | "
            f"{r.health_probes} ({r.health_failures}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.attacks", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--attacks", default="header,headers,slowloris,idle,body,unframed")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, shorter attacks")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    parser.add_argument(
        "--at-least",
        type=float,
        default=10.0,
        help="repeat an attack that is over sooner, until this many seconds (default 10)",
    )
    options = parser.parse_args(argv)
    sizes = Sizes.quick() if options.quick else Sizes()
    chosen = [a.strip() for a in options.attacks.split(",") if a.strip()]
    known = attacks(sizes)
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        parser.error(f"unknown attack(s): {', '.join(unknown)}; known: {', '.join(known)}")
    work = Path(__file__).resolve().parent / ".work" / "attacks"
    work.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", file=sys.stderr)
    with HostileUpstream(sizes) as upstream, Children(work / "logs") as children:
        for name in chosen:
            print(f"attack {name} ...", file=sys.stderr, flush=True)
            with gateway(children, work, upstream) as target:
                results.append(run(name, target, known[name], options.at_least))
            print(f"  {results[-1].outcome}", file=sys.stderr, flush=True)
    print(table(results))
    if options.json is not None:
        document = {
            "load_average": load,
            "sizes": asdict(sizes),
            "results": [asdict(r) for r in results],
        }
        options.json.write_text(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
