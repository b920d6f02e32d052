"""``tools/call`` to a Streamable HTTP server without the SDK's client: one POST on a pooled
aiohttp connection, answered in JSON or in an SSE stream.

The SDK's client session (``upstream.py``) runs every message through memory streams and tasks
of its own; on a busy machine those hops cost more than the call (bench/mcp_tool_call.py).
This client speaks the part of the Streamable HTTP transport a tool call needs, with a session
of its own on the same server: the ``initialize`` handshake once (and again when the server
says the session is gone), then a POST per call with the session's id and protocol version.
It keeps what the SDK path keeps: the server's credential fetched just in time from the broker
and set only on requests to the pinned origin, names resolved through the egress guard, no
redirects, no proxies or cookies from the environment, the result capped in size. The call's
connection goes back to the pool for the next call, also when the answer came in an SSE stream
(the rest of the stream is read off the call's path): a new connection per call cost more than
the rest of the gateway's work on it (bench/README.md, the MCP section).

A message from the server other than the call's answer is handled as the SDK's client handles
what it did not ask for: a notification is dropped, a request is answered "method not found"
(the gateway offers the upstream no sampling, roots or elicitation). A call cancelled here
(a timeout, or the client's ``notifications/cancelled``) is cancelled upstream with the same
notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from typing import Any

import aiohttp
import mcp_types as types
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION

from gateway.config.mcp import McpServer
from gateway.providers.egress import GuardedResolver
from gateway.secrets.broker import SecretBroker

ACCEPT = "application/json, text/event-stream"
SESSION_HEADER = "mcp-session-id"
VERSION_HEADER = "mcp-protocol-version"
CLIENT_INFO = {"name": "sealgate", "version": "0.1.0"}
SSE_SLACK_BYTES = 64 * 1024
DRAIN_SECONDS = 5.0  # the longest an SSE stream may go on after its answer and keep its connection
METHOD_NOT_FOUND = -32601


class ProtocolError(Exception):
    """The server broke the transport (a status, a content type or a message it may not
    send), or answered the call with a JSON-RPC error; ``message`` says which."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SessionGone(Exception):
    """404 on a session the server had given: it forgot it (restarted, expired)."""


class DirectCaller:
    def __init__(self, server: McpServer, broker: SecretBroker) -> None:
        assert server.url is not None  # a Streamable HTTP server (the aggregator decides)
        self._server = server
        self._broker = broker
        self._http: aiohttp.ClientSession | None = None
        self._opened = False
        self._session_id: str | None = None  # None: the server keeps no sessions
        self._version = LATEST_HANDSHAKE_VERSION
        self._opening: asyncio.Lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._limit = server.max_result_bytes + SSE_SLACK_BYTES
        self._draining: set[asyncio.Task[None]] = set()  # streams read after their answer

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            connector = aiohttp.TCPConnector(
                limit=64,
                ttl_dns_cache=60,
                keepalive_timeout=30,
                resolver=GuardedResolver(self._server.host, self._server.allow_private_network),
            )
            self._http = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent",),
                headers={"User-Agent": "sealgate"},
            )
        return self._http

    async def _headers(self) -> dict[str, str]:
        headers = {"accept": ACCEPT, "content-type": "application/json"}
        ref = self._server.credential_ref
        if ref is not None:
            value = (await self._broker.get(ref)).reveal()
            header = self._server.credential_header
            headers[header] = f"Bearer {value}" if header == "authorization" else value
        if self._opened:
            headers[VERSION_HEADER] = self._version
        if self._session_id is not None:
            headers[SESSION_HEADER] = self._session_id
        return headers

    async def call_tool(self, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        params: dict[str, Any] = {"name": name}
        if arguments is not None:
            params["arguments"] = arguments
        for attempt in range(2):
            await self._open()
            request_id = next(self._ids)
            message = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
            try:
                result, _ = await self._exchange(message)
            except SessionGone:
                self._opened, self._session_id = False, None
                if attempt:
                    raise ProtocolError("the server forgot a session it had just opened") from None
                continue
            except asyncio.CancelledError:
                await self._cancel_upstream(request_id)
                raise
            return types.CallToolResult.model_validate(result)
        raise AssertionError("unreachable")

    async def _open(self) -> None:
        if self._opened:
            return
        async with self._opening:
            if self._opened:
                return
            initialize = {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": LATEST_HANDSHAKE_VERSION,
                    "capabilities": {},
                    "clientInfo": CLIENT_INFO,
                },
            }
            answer, session_id = await self._exchange(initialize)
            version = answer.get("protocolVersion")
            if not isinstance(version, str) or version not in HANDSHAKE_PROTOCOL_VERSIONS:
                raise ProtocolError(f"the server offered protocol version {version!r}")
            self._version, self._session_id = version, session_id
            self._opened = True
            await self._notify({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def _exchange(self, message: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The result of the request ``message``, and the session id the server answered with."""
        headers = await self._headers()
        response = await self._client().post(
            self._server.url or "", json=message, headers=headers, allow_redirects=False
        )
        try:
            if response.status == 404 and self._session_id is not None:
                raise SessionGone
            result = await self._answer(response, message["id"])
        except BaseException:
            response.close()
            raise
        self._keep(response)
        return result, response.headers.get(SESSION_HEADER)

    def _keep(self, response: aiohttp.ClientResponse) -> None:
        """The connection back to the pool for the next call. A JSON answer was read whole; an
        SSE stream is answered before it ends (the server closes it after the answer), and a
        connection given back before its response ends is closed, so that each call would
        open a new one: the rest of the stream is read off the call's path instead."""
        if response.content.at_eof():
            response.release()
            return
        task = asyncio.get_running_loop().create_task(self._drain(response))
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def _drain(self, response: aiohttp.ClientResponse) -> None:
        """Read what follows the answer (nothing the call needs: it was answered) to the end of
        the stream, then give the connection back; a stream that goes on past
        ``DRAIN_SECONDS`` or ``SSE_SLACK_BYTES`` loses its connection instead."""
        ended = False
        try:
            size = 0
            async with asyncio.timeout(DRAIN_SECONDS):
                while size <= SSE_SLACK_BYTES:
                    chunk = await response.content.readany()
                    if not chunk:
                        ended = True
                        break
                    size += len(chunk)
        except (TimeoutError, aiohttp.ClientError, OSError):
            pass
        finally:
            if ended:
                response.release()
            else:
                response.close()

    async def _answer(self, response: aiohttp.ClientResponse, request_id: int) -> dict[str, Any]:
        """The ``result`` of the JSON-RPC response to ``request_id``, from a JSON body or from
        the SSE stream the server opened for it."""
        if response.status != 200:
            raise ProtocolError(f"the server answered HTTP {response.status}")
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            body = await _read(response, self._limit)
            return _result(json.loads(body), request_id)
        if kind != "text/event-stream":
            raise ProtocolError(f"the server answered {kind or 'no content type'}")
        data: list[bytes] = []
        size = 0
        async for line in response.content:
            size += len(line)
            if size > self._limit:
                raise ProtocolError(f"the answer is larger than {self._limit} bytes")
            line = line.rstrip(b"\r\n")
            if line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
                continue
            if line or not data:
                continue  # another field (event, id, retry), a comment, or a blank line alone
            event, data = b"\n".join(data), []
            found = json.loads(event)
            if isinstance(found, dict) and found.get("id") == request_id and "method" not in found:
                return _result(found, request_id)
            await self._unasked(found)
        raise ProtocolError("the server closed the stream without answering")

    async def _unasked(self, message: Any) -> None:
        """A message the call did not ask for: a request gets "method not found"."""
        if isinstance(message, dict) and "method" in message and "id" in message:
            refusal = {
                "jsonrpc": "2.0",
                "id": message["id"],
                "error": {"code": METHOD_NOT_FOUND, "message": "not offered by this client"},
            }
            await self._notify(refusal)

    async def _notify(self, message: dict[str, Any]) -> None:
        """A notification or a response: the server answers 202 with no body."""
        headers = await self._headers()
        async with self._client().post(
            self._server.url or "", json=message, headers=headers, allow_redirects=False
        ) as response:
            if response.status not in (200, 202, 204):
                raise ProtocolError(f"the server answered HTTP {response.status}")
            await response.read()

    async def _cancel_upstream(self, request_id: int) -> None:
        notice = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": request_id, "reason": "cancelled by the gateway"},
        }
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await asyncio.shield(self._notify(notice))

    async def close(self) -> None:
        for task in list(self._draining):
            task.cancel()
        if self._draining:
            await asyncio.gather(*self._draining, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None
        self._opened, self._session_id = False, None


async def _read(response: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise ProtocolError(f"the answer is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _result(message: Any, request_id: int) -> dict[str, Any]:
    if not isinstance(message, dict) or message.get("id") != request_id:
        raise ProtocolError("the server answered another request")
    error = message.get("error")
    if isinstance(error, dict):
        raise ProtocolError(str(error.get("message", "error"))[:300])
    result = message.get("result")
    if not isinstance(result, dict):
        raise ProtocolError("the answer carries no result")
    return result
