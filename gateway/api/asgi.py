"""Small raw-ASGI pieces for the hot path: a capped body reader, plain responses, and calls that
a client disconnect cancels."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from starlette.types import Message, Receive, Send

from gateway.api import bodies
from gateway.errors import GatewayError, InvalidRequest, PayloadTooLarge
from gateway.values import Stream

T = TypeVar("T")
Headers = Mapping[bytes, bytes]

JSON_HEADERS = [(b"content-type", b"application/json")]


class ClientGone(Exception):
    """The client disconnected before the answer was ready; the upstream call was cancelled."""


async def read_json(receive: Receive, headers: Headers, limit: int) -> dict[str, object]:
    """The request body as a JSON object (strict JSON: ``gateway.api.bodies``), refusing more
    than ``limit`` bytes whether or not the client announced a Content-Length."""
    data = bodies.parse(await read_body(receive, headers, limit))
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object")
    return data


async def read_body(receive: Receive, headers: Headers, limit: int) -> bytes:
    """The request body's bytes, refusing more than ``limit`` whether or not the client
    announced a Content-Length."""
    length = headers.get(b"content-length")
    if length is not None:
        if not length.isdigit():
            raise InvalidRequest("invalid Content-Length header")
        if int(length) > limit:
            raise PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")
    message = await receive()
    body = message.get("body", b"")
    if message.get("more_body"):
        chunks = [body]
        size = len(body)
        while message.get("more_body"):
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
    elif message["type"] == "http.disconnect":
        raise ClientGone
    if len(body) > limit:
        raise PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")
    return bytes(body)


async def send_body(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] = JSON_HEADERS,
) -> None:
    """A whole answer, framed by its Content-Length (not chunked: one write for the body, and a
    client knows it has all of it)."""
    framed = [*headers, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": framed})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, exc: GatewayError, body: dict[str, object] | None = None) -> None:
    """The error as a JSON body (OpenAI-shaped unless ``body`` gives another shape)."""
    headers = JSON_HEADERS + [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    payload = json.dumps(exc.body() if body is None else body).encode()
    await send_body(send, exc.http_status, payload, headers)


async def unless_disconnected(receive: Receive, call: Awaitable[T]) -> T:
    """Await ``call`` in this task while one small watcher task listens for the client's
    disconnect; if it comes first, this task is cancelled and ClientGone raised instead."""
    current = asyncio.current_task()
    assert current is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        message: Message = await receive()
        while message["type"] != "http.disconnect":
            message = await receive()
        gone = True
        current.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await call
    except asyncio.CancelledError:
        if gone:
            current.uncancel()
            raise ClientGone from None
        raise
    finally:
        watcher.cancel()


SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


async def send_stream(
    receive: Receive,
    send: Send,
    stream: Stream,
    on_close: Callable[[Stream, str], Awaitable[None]],
    error_body: Callable[[GatewayError], dict[str, Any]] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send an upstream stream chunk by chunk (``headers`` added to the SSE ones). A client
    disconnect cancels the pump and closes the upstream connection at once; an upstream failure
    after the first byte becomes a final SSE ``error`` event (the status line is already sent).
    ``on_close`` runs exactly once: before the response ends when the stream ran to its end (so
    what it records is in place before the client sees the answer complete), or after a
    disconnect."""
    outcome = "ok"
    closed = False

    async def close(result: str) -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        try:
            await stream.aclose()
        finally:
            await on_close(stream, result)

    async def pump() -> None:
        nonlocal outcome
        start = SSE_HEADERS + headers if headers else SSE_HEADERS
        await send({"type": "http.response.start", "status": 200, "headers": start})
        try:
            async for chunk in stream.chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except GatewayError as exc:
            outcome = exc.code
            body = exc.body() if error_body is None else error_body(exc)
            event = b"event: error\ndata: " + json.dumps(body).encode() + b"\n\n"
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await close(outcome)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    try:
        await unless_disconnected(receive, pump())
    except (ClientGone, OSError):
        outcome = "client_disconnected"
    finally:
        await close(outcome)
