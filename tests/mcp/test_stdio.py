"""A local stdio MCP server behind the gateway (issue 20, item 1): allowed only when the config
says so, started with none of the gateway's environment (its admin key, a provider key in its
environment), given its own credential by reference, and called like any other server.

The server (tests/mcp/stdio_server.py) is made with the official ``mcp`` SDK and started by a
real gateway process; the client is the SDK's, through /mcp."""

from __future__ import annotations

import hashlib
import json
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import mcp_types as types
import pytest

from gateway.errors import ConfigError
from gateway.serve import parse_config
from tests.mcp.stack import session
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.anyio

SERVER = Path(__file__).with_name("stdio_server.py")
# What the MCP SDK passes to every stdio server (mcp.client.stdio.DEFAULT_INHERITED_ENV_VARS),
# none of them a secret; plus the one variable the config names.
# LC_CTYPE: CPython sets it in its own environment when started in the C locale (PEP 538).
SAFE = {"HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LC_CTYPE"}


def config(token_file: Path, allow: bool = True) -> str:
    return f"""
deployments:
  - model: mock-gpt
    provider: mock
verify:
  mode: "off"
mcp:
  allow_stdio: {"true" if allow else "false"}
  servers:
    - name: local
      transport: stdio
      command: [{sys.executable}, {SERVER}]
      env: {{STDIO_TOKEN: "file:{token_file}"}}
      cwd: {token_file.parent}
"""


class Local:
    def __init__(self, gateway: GatewayProcess, token: str, canary: str) -> None:
        self.gateway, self.token, self.canary = gateway, token, canary

    def key(self, *tools: str) -> str:
        offered = self.gateway.admin("GET", "/admin/mcp/servers/local/tools")
        assert offered.status_code == 200, offered.text
        digests = {t["tool"]: t["digest"] for t in offered.json()["data"]}
        for tool in tools:
            body = {"server": "local", "tool": tool, "digest": digests[tool]}
            approved = self.gateway.admin("POST", "/admin/mcp/approvals", json=body)
            assert approved.status_code in (201, 409), approved.text
        created = self.gateway.create_key(["mock-gpt"])
        grant = {"tools": [f"local.{t}" for t in tools]}
        granted = self.gateway.admin("PUT", f"/admin/mcp/grants/keys/{created['id']}", json=grant)
        assert granted.status_code == 200, granted.text
        return str(created["key"])


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    workdir = tmp_path_factory.mktemp("stdio")
    token = "stdio-" + secrets.token_hex(16)
    token_file = workdir / "secret" / "token"
    token_file.parent.mkdir()
    token_file.write_text(token)
    canary = "sk-proj-canary" + secrets.token_hex(20)
    gateway = GatewayProcess(
        workdir / "gateway", config(token_file), env={"OPENAI_API_KEY": canary}
    ).start()
    yield Local(gateway, token, canary)
    gateway.stop()


def text_of(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def test_a_stdio_server_gets_its_credential_by_reference_and_none_of_the_gateways_env(
    local: Local,
) -> None:
    key = local.key("environment")
    async with session(local.gateway.url + "/mcp", key) as client:
        result = await client.call_tool("local.environment", {})
    assert result.is_error is False
    seen = json.loads(text_of(result))
    assert set(seen["names"]) <= SAFE | {"STDIO_TOKEN"}
    assert "STDIO_TOKEN" in seen["names"]
    assert seen["token_sha256"] == hashlib.sha256(local.token.encode()).hexdigest()
    secret_hashes = {
        hashlib.sha256(v.encode()).hexdigest() for v in (local.canary, local.gateway.admin_key)
    }
    assert not secret_hashes & set(seen["values_sha256"])  # under no other name either
    assert seen["cwd"] == str(local.gateway.workdir.parent / "secret")  # the configured cwd


async def test_a_stdio_servers_tool_is_listed_and_called_like_any_other(local: Local) -> None:
    key = local.key("echo")
    async with session(local.gateway.url + "/mcp", key) as client:
        listed = await client.list_tools()
        result = await client.call_tool("local.echo", {"text": "over stdio"})
    assert [t.name for t in listed.tools] == ["local.echo"]
    assert text_of(result) == "over stdio"
    logs = local.gateway.stderr_path.read_text() + local.gateway.stdout_path.read_text()
    assert local.token not in logs and local.canary not in logs


def test_a_stdio_server_is_refused_unless_the_config_allows_stdio(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(config(tmp_path / "token", allow=False), "test")
    assert "set mcp.allow_stdio: true" in str(refused.value)


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ("{name: x, transport: stdio}", "needs 'command'"),
        ("{name: x, transport: stdio, command: [python3]}", "absolute path"),
        ("{name: x, transport: stdio, command: [/bin/x], url: 'http://a/mcp'}", "no 'url'"),
        ("{name: x, transport: stdio, command: [/bin/x], env: {T: plain}}", "reference"),
        ("{name: x, url: 'https://a.example/mcp', command: [/bin/x]}", "stdio only"),
    ],
)
def test_a_malformed_stdio_server_is_refused_at_start_up_with_what_is_wrong(
    server: str, message: str
) -> None:
    text = "deployments: [{model: m, provider: mock}]\nmcp:\n  allow_stdio: true\n"
    text += f"  servers: [{server}]\n"
    with pytest.raises(ConfigError) as refused:
        parse_config(text, "test")
    assert message in str(refused.value)
