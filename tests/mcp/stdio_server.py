"""A local MCP server over stdio for the tests, built with the official ``mcp`` SDK: run as a
script by the gateway (``transport: stdio``), so it imports nothing of the repository.

Its tools: ``environment`` (the names of the variables it was started with, the SHA-256 of
``STDIO_TOKEN``'s value, and its working directory: what a test needs to prove the gateway
gave it none of its own environment, and its credential by reference) and ``echo``.
"""

from __future__ import annotations

import hashlib
import json
import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("test-stdio")


@server.tool(description="Tells what this process was started with.")
def environment() -> str:
    token = os.environ.get("STDIO_TOKEN", "")
    values = sorted(os.environ.values())
    return json.dumps(
        {
            "names": sorted(os.environ),
            "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
            "values_sha256": [hashlib.sha256(v.encode()).hexdigest() for v in values],
            "cwd": os.getcwd(),
        }
    )


@server.tool(description="Answers the text it is given.")
def echo(text: str) -> str:
    return text


if __name__ == "__main__":
    server.run("stdio")
