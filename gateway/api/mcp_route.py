"""Where /mcp is, and what it answers when the MCP gateway is off. Kept apart from
``gateway.api.mcp`` so a gateway with no ``mcp.servers`` routes /mcp without importing the MCP
SDK (issue 23: it is tens of MB resident).
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from gateway.errors import NotFound

PATH = "/mcp"


def is_mcp(path: str) -> bool:
    return path == PATH or path == PATH + "/"


async def not_enabled(scope: Scope, receive: Receive, send: Send) -> None:
    """/mcp on a gateway whose config has no ``mcp.servers``: a 404 that says so."""
    raise NotFound(
        "the MCP gateway is not enabled: the config has no mcp.servers", code="mcp_not_enabled"
    )
