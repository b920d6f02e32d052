"""``tools/call`` on /mcp answered without the SDK's server session, for a session the SDK opened.

The SDK's session manager runs every message through a transport, memory streams and a task
group; that is the cost of a proxied call on a busy machine (bench/mcp_tool_call.py). A call
needs none of it when it asks for no progress: this module takes such a POST (one JSON-RPC
``tools/call`` request, on a session the same key opened, with the headers the SDK requires),
hands it to the aggregator, which checks, counts, forwards and audits it as on the SDK's path,
and answers it in JSON, which the transport allows for any request. Everything else (the
handshake, listings, prompts, resources, a call that asks for progress or a task, a batch, a
malformed message) goes to the SDK unchanged, its body replayed; so does a request whose
headers the SDK would refuse, so that it refuses it in its own words.

A ``notifications/cancelled`` for a call answered here cancels it (and the aggregator cancels
it upstream). Ownership of a session is taken from the SDK's answer to the request that opened
it, so a session is used only with the key that opened it, as the SDK enforces on its path.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import mcp_types as types
from mcp.server.streamable_http import check_accept_headers
from mcp_types.methods import serialize_server_result
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from gateway.errors import GatewayError, NotFound, RateLimited
from gateway.mcp.aggregator import Aggregator
from gateway.store.keys import KeyRecord

SESSION = "mcp-session-id"
VERSION = "mcp-protocol-version"
INVALID_PARAMS = -32602
RATE_LIMITED = -32029
GATEWAY_REFUSED = -32050
CANCELLED = -32800
MAX_OWNED = 100_000  # sessions remembered; past it the oldest are forgotten (the SDK path stays)


def rpc_error(exc: GatewayError) -> dict[str, Any]:
    """A gateway refusal as a JSON-RPC error object (the same codes on both paths)."""
    if isinstance(exc, NotFound):
        code = INVALID_PARAMS
    elif isinstance(exc, RateLimited):
        code = RATE_LIMITED
    else:
        code = GATEWAY_REFUSED
    return {"code": code, "message": exc.message, "data": {"type": exc.type, "code": exc.code}}


class DirectCalls:
    def __init__(self, aggregator: Aggregator, max_body: int) -> None:
        self._aggregator = aggregator
        self._max_body = max_body
        self._owners: dict[str, str] = {}  # session id -> the id of the key that opened it
        self._running: dict[tuple[str, str], asyncio.Task[types.CallToolResult]] = {}

    def watch(self, record: KeyRecord, send: Send) -> Send:
        """``send`` for a request the SDK serves: notes who owns the session it opens."""

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                for name, value in message.get("headers", []):
                    if name.lower() == SESSION.encode():
                        if len(self._owners) >= MAX_OWNED:
                            self._owners.pop(next(iter(self._owners)))
                        self._owners[value.decode("latin-1")] = record.id
            await send(message)

        return noting

    def forget(self, record: KeyRecord, session_id: str | None) -> None:
        """The session's owner ends it (a DELETE; another key's is refused by the SDK)."""
        if session_id is not None and self._owners.get(session_id) == record.id:
            del self._owners[session_id]

    async def take(
        self, record: KeyRecord, scope: Scope, receive: Receive, send: Send
    ) -> Receive | None:
        """Answer the request here and return None, or return the ``receive`` (its body
        replayed) to hand the request to the SDK with."""
        request = Request(scope)
        session_id = request.headers.get(SESSION)
        # the SDK's reading of a request without the header
        version = request.headers.get(VERSION, types.DEFAULT_NEGOTIATED_VERSION)
        if (
            session_id is None
            or self._owners.get(session_id) != record.id
            or request.headers.get("content-type", "").split(";")[0].strip() != "application/json"
            or check_accept_headers(request) != (True, True)
            or version not in HANDSHAKE_PROTOCOL_VERSIONS
        ):
            return receive
        body, more = await _read(receive, self._max_body)
        replay = _replaying(body, more, receive)
        if more:
            return replay
        try:
            message = json.loads(body)
        except ValueError:
            return replay
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return replay
        method, request_id = message.get("method"), message.get("id")
        if method == "notifications/cancelled" and "id" not in message:
            params = message.get("params")
            wanted = params.get("requestId") if isinstance(params, dict) else None
            task = self._running.get((session_id, json.dumps(wanted)))
            if task is None:
                return replay  # not one of ours: the SDK's session handles it
            task.cancel()
            await _respond(send, 202, b"", session_id)
            return None
        if method != "tools/call" or not isinstance(request_id, (int, str)):
            return replay
        try:
            params = types.CallToolRequestParams.model_validate(message.get("params"))
        except ValidationError:
            return replay
        if params.task is not None or (params.meta is not None and "progress_token" in params.meta):
            return replay
        await self._call(record, session_id, version, request_id, params, send)
        return None

    async def _call(
        self,
        record: KeyRecord,
        session_id: str,
        version: str,
        request_id: int | str,
        params: types.CallToolRequestParams,
        send: Send,
    ) -> None:
        running = (session_id, json.dumps(request_id))
        task = asyncio.ensure_future(
            self._aggregator.call(record, params.name, params.arguments, None)
        )
        self._running[running] = task
        answer: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
        try:
            result = await task
            dumped = result.model_dump(mode="json", by_alias=True, exclude_none=True)
            # as the SDK sends it: only the fields of the session's protocol version
            answer["result"] = serialize_server_result("tools/call", version, dumped)
        except GatewayError as exc:
            answer["error"] = rpc_error(exc)
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # this request itself was cancelled (the server is stopping)
            answer["error"] = {"code": CANCELLED, "message": "cancelled by the client"}
        finally:
            self._running.pop(running, None)
        await _respond(send, 200, json.dumps(answer).encode(), session_id)


async def _read(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The body, up to ``limit`` bytes; whether more followed (then it was not all read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False
        if size > limit:
            return b"".join(chunks), True


def _replaying(body: bytes, more: bool, receive: Receive) -> Receive:
    """A ``receive`` that gives the body read so far, then what is left of the original."""
    done = False

    async def replay() -> Message:
        nonlocal done
        if not done:
            done = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay


async def _respond(send: Send, status: int, body: bytes, session_id: str) -> None:
    headers = [
        (b"mcp-session-id", session_id.encode("latin-1")),
        (b"content-length", b"%d" % len(body)),
    ]
    if body:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
