"""/mcp: the MCP gateway's endpoint, in the Streamable HTTP transport of the MCP specification.

The official ``mcp`` SDK speaks the protocol (its low-level ``Server`` and its session manager:
JSON-RPC framing, the handshake, sessions, SSE streams, cancellation); this module decides who
is calling and hands each request to the aggregator (``gateway.mcp.aggregator``), which decides
what that caller may see and call.

Every HTTP request to /mcp carries a Sealgate virtual key (``Authorization: Bearer sk-sg-...``)
and is authenticated before the SDK reads a byte of its body. An MCP session belongs to the key
that opened it: the SDK answers a request for that session with another key exactly as for a
session that does not exist. The caller's credential stops here: nothing of the client's HTTP
request but the tool's name and arguments reaches an upstream server.
"""

from __future__ import annotations

import contextlib
from typing import Any

import mcp_types as types
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from gateway.api.mcp_calls import GATEWAY_REFUSED, DirectCalls, rpc_error
from gateway.api.mcp_route import PATH, is_mcp
from gateway.auth import Authenticator
from gateway.errors import GatewayError
from gateway.mcp.aggregator import Aggregator
from gateway.store.keys import KeyRecord

__all__ = ["PATH", "McpEndpoint", "build_server", "is_mcp"]

CALLER = "sealgate.mcp.caller"  # where the endpoint leaves the caller's key record
MAX_BODY_BYTES = 1024 * 1024


def _caller(ctx: ServerRequestContext[Any, Any]) -> KeyRecord:
    request = ctx.request
    record = getattr(request, "scope", {}).get("state", {}).get(CALLER)
    if not isinstance(record, KeyRecord):  # the endpoint sets it on every request it admits
        raise MCPError(GATEWAY_REFUSED, "not authenticated")
    return record


def _rpc_error(exc: GatewayError) -> MCPError:
    error = rpc_error(exc)
    return MCPError(error["code"], error["message"], error["data"])


def build_server(aggregator: Aggregator) -> Server[Any]:
    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        try:
            tools = await aggregator.tools_for(_caller(ctx))
        except GatewayError as exc:
            raise _rpc_error(exc) from None
        return types.ListToolsResult(tools=tools)

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        async def progress(progress: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(progress, total, message)

        asked = params.meta is not None and "progress_token" in params.meta
        try:
            return await aggregator.call(
                _caller(ctx), params.name, params.arguments, progress if asked else None
            )
        except GatewayError as exc:
            raise _rpc_error(exc) from None

    async def list_prompts(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        try:
            return types.ListPromptsResult(prompts=await aggregator.prompts_for(_caller(ctx)))
        except GatewayError as exc:
            raise _rpc_error(exc) from None

    async def get_prompt(
        ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        try:
            return await aggregator.get_prompt(_caller(ctx), params.name, params.arguments)
        except GatewayError as exc:
            raise _rpc_error(exc) from None

    async def list_resources(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        try:
            return types.ListResourcesResult(resources=await aggregator.resources_for(_caller(ctx)))
        except GatewayError as exc:
            raise _rpc_error(exc) from None

    async def read_resource(
        ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        try:
            return await aggregator.read_resource(_caller(ctx), params.uri)
        except GatewayError as exc:
            raise _rpc_error(exc) from None

    return Server(
        "sealgate",
        version="0.1.0",
        instructions="Tools of the upstream MCP servers this key may use, as <server>.<tool>.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
    )


class McpEndpoint:
    """The ASGI callable for /mcp: the caller first, then the SDK's session manager."""

    def __init__(self, aggregator: Aggregator, authenticator: Authenticator) -> None:
        self.aggregator = aggregator
        self._auth = authenticator
        self.manager = StreamableHTTPSessionManager(
            app=build_server(aggregator), max_request_body_size=MAX_BODY_BYTES
        )
        self._running: contextlib.AsyncExitStack | None = None
        self.direct = DirectCalls(aggregator, MAX_BODY_BYTES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        record = await self._auth.authenticate(headers.get("authorization"))
        session_id = headers.get("mcp-session-id")
        if scope["method"] == "POST":
            left = await self.direct.take(record, scope, receive, send)
            if left is None:
                return  # a tools/call answered directly (mcp_calls.py)
            receive = left
            if session_id is None:
                send = self.direct.watch(record, send)  # it opens a session: note whose
        elif scope["method"] == "DELETE":
            self.direct.forget(record, session_id)
        scope = dict(scope)
        # The SDK binds a session to this identity (the key's id; the key itself is not kept).
        token = AccessToken(token="-", client_id=record.id, scopes=[])  # noqa: S106 - no secret
        scope["user"] = AuthenticatedUser(token)
        scope["state"] = {**scope.get("state", {}), CALLER: record}
        await self.manager.handle_request(scope, receive, send)

    async def start(self) -> None:
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(self.manager.run())
        self._running = stack

    async def stop(self) -> None:
        if self._running is not None:
            await self._running.aclose()
            self._running = None
        await self.aggregator.close()
