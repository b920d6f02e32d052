"""The floor of an MCP proxy built on the ``mcp`` SDK: a low-level SDK ``Server`` whose
``tools/call`` is forwarded, on one open SDK client session, to the upstream, and nothing else
(no auth, no allowlist, no pins, no limits, no audit). ``bench.mcp_tool_call`` runs it beside
Sealgate, so the table separates what the SDK's two extra hops cost from what Sealgate adds.

    python -m bench.mcp_floor <port> <upstream url>
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import mcp_types as types
import uvicorn
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.types import Receive, Scope, Send


def build(upstream: str) -> Any:
    held: dict[str, ClientSession] = {}

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        return await held["session"].call_tool(params.name, params.arguments)

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return await held["session"].list_tools()

    server = Server("floor", on_list_tools=list_tools, on_call_tool=call_tool)
    manager = StreamableHTTPSessionManager(app=server)

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with (
            httpx2.AsyncClient() as http,
            streamable_http_client(upstream, http_client=http) as (read, write),
            ClientSession(read, write) as session,
            manager.run(),
        ):
            await session.initialize()
            held["session"] = session
            yield

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            async with lifespan():
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
            assert message["type"] == "lifespan.shutdown"
            await send({"type": "lifespan.shutdown.complete"})
            return
        await manager.handle_request(scope, receive, send)

    return app


if __name__ == "__main__":
    uvicorn.run(build(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
