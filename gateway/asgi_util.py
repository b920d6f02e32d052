"""Small ASGI pieces for the hot path: a capped body reader and disconnect-aware calls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.errors import GatewayError, InvalidRequest, PayloadTooLarge
from gateway.providers.base import Stream

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before the answer was ready; the upstream call was cancelled."""


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise InvalidRequest("invalid Content-Length header")
        if int(length) > limit:
            raise PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    try:
        data = json.loads(b"".join(chunks))
    except ValueError:
        raise InvalidRequest("request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object")
    return data


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(receive: Receive, call: Coroutine[Any, Any, T]) -> T:
    """Run ``call``; if the client disconnects first, cancel it and raise ClientGone."""
    task = asyncio.ensure_future(call)
    watcher = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
        watcher.cancel()
    if task.done() and not task.cancelled():
        return task.result()
    raise ClientGone


SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class StreamResponse(Response):
    """Sends an upstream stream chunk by chunk. A client disconnect cancels the pump and closes
    the upstream connection at once; an upstream failure after the first byte becomes a final
    SSE ``error`` event (the status line is already sent). ``on_close`` runs exactly once."""

    def __init__(
        self,
        stream: Stream,
        on_close: Callable[[Stream, str], Awaitable[None]],
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.stream = stream
        self.on_close = on_close
        self.status_code = 200
        self.background = None
        self.raw_headers = SSE_HEADERS + (headers or [])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outcome = "ok"

        async def pump() -> None:
            nonlocal outcome
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            try:
                async for chunk in self.stream.chunks():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except GatewayError as exc:
                outcome = exc.code
                event = b"event: error\ndata: " + json.dumps(exc.body()).encode() + b"\n\n"
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        try:
            await unless_disconnected(receive, pump())
        except ClientGone:
            outcome = "client_disconnected"
        except OSError:
            outcome = "client_disconnected"
        finally:
            await self.stream.aclose()
            await self.on_close(self.stream, outcome)
