"""The pass-through floor: the least a Python proxy under uvicorn can do per request.

A raw ASGI app (no framework) that reads the POST body of /v1/chat/completions, forwards it to the
upstream with a pooled HTTP client and the upstream key, and answers with the upstream's status,
content type and body. No auth, no parsing, no logging: whatever Sealgate costs above this floor
is the price of its features. Two clients plug in (`floor_aiohttp`, `floor_httpx`), so the same
app measures which one a gateway should use.

Settings come from the environment: BENCH_UPSTREAM_URL (the full completions URL) and
BENCH_UPSTREAM_KEY.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ROUTE = "/v1/chat/completions"
POOL_SIZE = 256
UPSTREAM_TIMEOUT_S = 30.0


class Forwarder(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        """Send the body; return (status, content type, body) of the upstream's answer."""
        ...


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _respond(send: Send, status: int, content_type: str, body: bytes) -> None:
    headers = [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send, forwarder: Forwarder) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await forwarder.open()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await forwarder.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


def make_app(forwarder: Forwarder) -> ASGIApp:
    upstream_url = os.environ["BENCH_UPSTREAM_URL"]
    upstream_headers = {
        "Authorization": "Bearer " + os.environ.get("BENCH_UPSTREAM_KEY", ""),
        "Content-Type": "application/json",
    }

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, forwarder)
            return
        if scope["type"] != "http":
            return
        if scope["path"] != ROUTE or scope["method"] != "POST":
            await _respond(send, 404, "application/json", b'{"error":"not found"}')
            return
        body = await _read_body(receive)
        try:
            status, content_type, payload = await forwarder.post(
                upstream_url, body, upstream_headers
            )
        except Exception as exc:
            await _respond(send, 502, "text/plain", type(exc).__name__.encode())
            return
        await _respond(send, status, content_type, payload)

    return app
