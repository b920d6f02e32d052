"""The MCP gateway's test stack, all real and on loopback: upstream MCP servers made with the
official ``mcp`` SDK (``tools``, open; ``vaulted``, which wants a bearer token; ``legacy``, on
the older HTTP+SSE transport), the token in a real OpenBao, a real gateway process in front,
and the SDK's client to talk to it.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import mcp_types as types
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.secrets.vaultlab import VaultLab
from tests.support.gateway_process import GatewayProcess, free_port

START_SECONDS = 30.0


class UpstreamMcp:
    """``tests/mcp/upstream_server.py`` in a process of its own."""

    def __init__(self, workdir: Path, token: str | None = None, sse: bool = False) -> None:
        self.port = free_port()
        self.token = token
        self.sse = sse
        self.log = workdir / f"upstream-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{'sse' if self.sse else 'mcp'}"

    def start(self) -> UpstreamMcp:
        command = [sys.executable, "-m", "tests.mcp.upstream_server", str(self.port)]
        if self.sse:
            command.append("--sse")
        if self.token is not None:
            command.append(self.token)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=out)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return self
            assert self.process.poll() is None, self.log.read_text()
            time.sleep(0.1)
        raise AssertionError("the upstream MCP server did not start")

    def control(self, method: str, path: str) -> Any:
        response = httpx.request(method, f"http://127.0.0.1:{self.port}/control/{path}")
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def gateway_config(
    tools: UpstreamMcp, vaulted: UpstreamMcp, legacy: UpstreamMcp, lab: VaultLab, ref: str
) -> str:
    return f"""
deployments:
  - model: mock-gpt
    provider: mock
secrets:
  vault:
    address: {lab.server.address}
    timeout_seconds: 10
    auth: {{method: token, token: "{lab.file_ref(lab.server.root_token)}"}}
verify:
  mode: "off"
mcp:
  servers:
    - name: tools
      url: {tools.url}
      allow_private_network: true
      timeout_seconds: 5
      max_result_bytes: 4096
    - name: vaulted
      url: {vaulted.url}
      credential: "{ref}"
      allow_private_network: true
    - name: legacy
      url: {legacy.url}
      transport: sse
      allow_private_network: true
  calls_per_minute_per_key: 5
  calls_per_minute_per_team: 3
"""


class Stack:
    def __init__(self, lab: VaultLab, workdir: Path, extra: str = "") -> None:
        self.upstream_token = "mcp-upstream-" + secrets.token_hex(16)
        path = "mcp/" + uuid.uuid4().hex
        lab.put(path, token=self.upstream_token)
        self.tools = UpstreamMcp(workdir)
        self.vaulted = UpstreamMcp(workdir, self.upstream_token)
        self.legacy = UpstreamMcp(workdir, sse=True)
        ref = f"vault:{lab.kv2}/{path}#token"
        config = gateway_config(self.tools, self.vaulted, self.legacy, lab, ref) + extra
        self.gateway = GatewayProcess(workdir / "gateway", config)

    def start(self) -> Stack:
        self.tools.start()
        self.vaulted.start()
        self.legacy.start()
        self.gateway.start()
        return self

    def stop(self) -> None:
        self.gateway.stop()
        self.tools.stop()
        self.vaulted.stop()
        self.legacy.stop()

    @property
    def mcp_url(self) -> str:
        return self.gateway.url + "/mcp"

    # -- admin ------------------------------------------------------------------------------
    def offered(self, server: str) -> dict[str, dict[str, Any]]:
        response = self.gateway.admin("GET", f"/admin/mcp/servers/{server}/tools")
        assert response.status_code == 200, response.text
        return {t["tool"]: t for t in response.json()["data"]}

    def approve(self, server: str, *tools: str) -> None:
        offered = self.offered(server)
        for tool in tools:
            body = {"server": server, "tool": tool, "digest": offered[tool]["digest"]}
            response = self.gateway.admin("POST", "/admin/mcp/approvals", json=body)
            assert response.status_code == 201, response.text

    def grant_key(self, key_id: str, *patterns: str) -> None:
        body = {"tools": list(patterns)}
        response = self.gateway.admin("PUT", f"/admin/mcp/grants/keys/{key_id}", json=body)
        assert response.status_code == 200, response.text

    def key(self, *patterns: str, **fields: Any) -> tuple[str, str]:
        """A new virtual key (and its id) granted ``patterns``."""
        created = self.gateway.create_key(["mock-gpt"], **fields)
        if patterns:
            self.grant_key(created["id"], *patterns)
        return created["key"], created["id"]

    def audit(self) -> list[dict[str, Any]]:
        response = self.gateway.admin("GET", "/admin/audit", params={"limit": 1000})
        assert response.status_code == 200, response.text
        entries: list[dict[str, Any]] = response.json()["data"]
        return entries


@contextlib.asynccontextmanager
async def session(url: str, key: str) -> AsyncIterator[ClientSession]:
    """An MCP session through the gateway, opened by the SDK's client with ``key``."""
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        yield client


def text_of(result: types.CallToolResult) -> str:
    """The text of a tool result's first content block."""
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text
