"""The streaming pass-through floor: the least a Python proxy under uvicorn does per SSE event.

A raw ASGI app (no framework, no auth, no parsing beyond finding the events' ends) that POSTs the
body to BENCH_UPSTREAM_URL with one pooled aiohttp session and relays the upstream's SSE answer
one event at a time (each `\\n\\n`-terminated event its own ASGI body message, as Sealgate sends
them), so `bench.streaming` compares per-event work on both sides.

Run: BENCH_UPSTREAM_URL=... uvicorn bench.floor_stream:app --loop uvloop --http httptools
"""

from __future__ import annotations

import os

import aiohttp

from bench.floor import POOL_SIZE, UPSTREAM_TIMEOUT_S, Receive, Scope, Send

HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


class StreamFloor:
    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.url = os.environ["BENCH_UPSTREAM_URL"]
        self.headers = {
            "Authorization": "Bearer " + os.environ.get("BENCH_UPSTREAM_KEY", ""),
            "Content-Type": "application/json",
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    connector = aiohttp.TCPConnector(limit=POOL_SIZE, keepalive_timeout=60)
                    timeout = aiohttp.ClientTimeout(total=UPSTREAM_TIMEOUT_S * 100)
                    self.session = aiohttp.ClientSession(connector=connector, timeout=timeout)
                    await send({"type": "lifespan.startup.complete"})
                else:
                    if self.session is not None:
                        await self.session.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        assert self.session is not None
        async with self.session.post(self.url, data=body, headers=self.headers) as resp:
            await send({"type": "http.response.start", "status": resp.status, "headers": HEADERS})
            event = b""
            async for line in resp.content:
                event += line
                if line in (b"\n", b"\r\n"):
                    await send({"type": "http.response.body", "body": event, "more_body": True})
                    event = b""
            await send({"type": "http.response.body", "body": event, "more_body": False})


app = StreamFloor()
