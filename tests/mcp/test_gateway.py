"""The MCP gateway end to end: the official ``mcp`` SDK's client talks to /mcp of a real gateway
process, which aggregates two upstream MCP servers made with the same SDK, one of them reached
with a credential the gateway reads from a real OpenBao (tests/mcp/stack.py)."""

from __future__ import annotations

import secrets
from pathlib import Path

import anyio
import httpx
import mcp_types as types
import pytest
from mcp import ClientSession, MCPError

from tests.mcp.stack import Stack, session, text_of

pytestmark = [pytest.mark.openbao, pytest.mark.anyio]

TOOLS = ("echo", "fail", "count", "slow")  # ``big`` stays unapproved until its own test


@pytest.fixture(scope="module")
def approved(stack: Stack) -> Stack:
    stack.approve("tools", *TOOLS)
    stack.approve("vaulted", "echo")
    return stack


async def test_a_key_sees_only_the_approved_tools_it_is_granted_under_server_names(
    approved: Stack,
) -> None:
    key, _ = approved.key("tools.*", "vaulted.echo")
    async with session(approved.mcp_url, key) as client:
        listed = await client.list_tools()
    names = sorted(t.name for t in listed.tools)
    # tools.big is granted (tools.*) but not approved; vaulted's other tools are not granted
    assert names == ["tools.count", "tools.echo", "tools.fail", "tools.slow", "vaulted.echo"]
    echo = next(t for t in listed.tools if t.name == "tools.echo")
    assert echo.description == "Answers the text it is given."
    assert echo.input_schema["properties"]["text"]["type"] == "string"


async def test_a_call_answers_with_the_upstream_tools_result(approved: Stack) -> None:
    key, _ = approved.key("tools.echo")
    async with session(approved.mcp_url, key) as client:
        result = await client.call_tool("tools.echo", {"text": "hello through the gateway"})
    assert result.is_error is False
    assert text_of(result) == "hello through the gateway"


async def test_a_tool_error_reaches_the_client_as_an_error_result(approved: Stack) -> None:
    key, _ = approved.key("tools.fail")
    async with session(approved.mcp_url, key) as client:
        result = await client.call_tool("tools.fail", {})
    assert result.is_error is True
    assert "fail" in text_of(result)


async def test_a_streamed_result_reaches_the_client_step_by_step(approved: Stack) -> None:
    key, _ = approved.key("tools.count")
    steps: list[tuple[float, float | None, str | None]] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append((progress, total, message))

    async with session(approved.mcp_url, key) as client:
        result = await client.call_tool("tools.count", {"n": 4}, progress_callback=progress)
    assert text_of(result) == "counted to 4"
    assert steps == [(float(i), 4.0, f"step {i}") for i in range(1, 5)]


async def test_a_cancelled_call_is_cancelled_upstream_and_audited(approved: Stack) -> None:
    key, key_id = approved.key("tools.slow")
    before = approved.tools.control("GET", "seen")["cancelled"]
    async with session(approved.mcp_url, key) as client:
        with anyio.move_on_after(1.0):
            await client.call_tool("tools.slow", {"seconds": 30})
        # the session is still good after the cancellation
        assert (await client.list_tools()).tools[0].name == "tools.slow"
    for _ in range(100):
        rows = [r for r in approved.audit() if r["actor"] == f"key:{key_id}"]
        if rows and approved.tools.control("GET", "seen")["cancelled"] > before:
            break
        await anyio.sleep(0.1)
    assert approved.tools.control("GET", "seen")["cancelled"] == before + 1
    outcomes = [(r["target"], r["detail"]["outcome"]) for r in rows]
    assert outcomes == [("mcp:tools.slow", "cancelled")]


async def test_a_key_without_grants_sees_nothing_and_calls_nothing(approved: Stack) -> None:
    key, _ = approved.key()
    async with session(approved.mcp_url, key) as client:
        assert (await client.list_tools()).tools == []
        for name in ("tools.echo", "vaulted.echo", "nothing.here"):
            with pytest.raises(MCPError) as refused:
                await client.call_tool(name, {"text": "x"})
            assert refused.value.error.code == -32602
            assert "unknown tool" in refused.value.error.message


async def test_a_team_without_grants_caps_its_keys_grants(approved: Stack) -> None:
    name = "t-" + secrets.token_hex(3)
    team = approved.gateway.admin("POST", "/admin/teams", json={"name": name})
    assert team.status_code == 201, team.text
    key, _ = approved.key("tools.echo", team_id=team.json()["id"])
    async with session(approved.mcp_url, key) as client:
        assert (await client.list_tools()).tools == []
        with pytest.raises(MCPError):
            await client.call_tool("tools.echo", {"text": "x"})
    granted = approved.gateway.admin(
        "PUT", f"/admin/mcp/grants/teams/{team.json()['id']}", json={"tools": ["tools.*"]}
    )
    assert granted.status_code == 200, granted.text
    async with session(approved.mcp_url, key) as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["tools.echo"]


async def test_the_upstream_gets_its_own_credential_and_never_the_clients(approved: Stack) -> None:
    key, _ = approved.key("vaulted.echo", "tools.echo")
    async with session(approved.mcp_url, key) as client:
        assert text_of(await client.call_tool("vaulted.echo", {"text": "v"})) == "v"
        assert text_of(await client.call_tool("tools.echo", {"text": "t"})) == "t"
    vaulted = approved.vaulted.control("GET", "seen")["authorization"]
    assert vaulted and set(vaulted) == {f"Bearer {approved.upstream_token}"}
    plain = approved.tools.control("GET", "seen")["authorization"]
    assert plain and set(plain) == {""}  # no credential configured: none sent
    assert not any(key in seen for seen in vaulted + plain)


async def test_a_result_over_the_servers_cap_is_refused(approved: Stack) -> None:
    approved.approve("tools", "big")
    key, _ = approved.key("tools.big")
    async with session(approved.mcp_url, key) as client:
        assert len(text_of(await client.call_tool("tools.big", {"size": 100}))) == 100
        with pytest.raises(MCPError) as refused:
            await client.call_tool("tools.big", {"size": 10_000})
    assert "larger than 4096 bytes" in refused.value.error.message


async def calls_until_refused(clients: list[ClientSession], most: int) -> tuple[int, MCPError]:
    """Calls tools.echo with each client in turn until one is refused: (calls that passed, the
    refusal). A limit per minute lets ``limit`` calls in a minute, so with a minute's turn
    between them at most twice that: ``most`` bounds the loop."""
    for made in range(most):
        try:
            await clients[made % len(clients)].call_tool("tools.echo", {"text": "x"})
        except MCPError as exc:
            return made, exc
    raise AssertionError(f"{most} calls and none refused")


async def test_tool_calls_over_the_keys_limit_are_refused(approved: Stack) -> None:
    key, _ = approved.key("tools.echo")  # calls_per_minute_per_key is 5 in the stack's config
    async with session(approved.mcp_url, key) as client:
        passed, refused = await calls_until_refused([client], 11)
    assert passed >= 5 and refused.error.code == -32029
    assert "tool calls per minute of this key exhausted" in refused.error.message


def test_mcp_without_a_virtual_key_is_refused(approved: Stack) -> None:
    for headers in ({}, {"Authorization": "Bearer sk-sg-made-up"}):
        response = httpx.post(approved.mcp_url, json={}, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"


async def test_no_key_credential_or_argument_appears_in_logs_audit_or_metrics(
    approved: Stack,
) -> None:
    key, key_id = approved.key("tools.echo", "tools.fail", "vaulted.echo")
    canary = "canary-argument-" + secrets.token_hex(12)
    async with session(approved.mcp_url, key) as client:
        assert text_of(await client.call_tool("tools.echo", {"text": canary})) == canary
        assert text_of(await client.call_tool("vaulted.echo", {"text": canary})) == canary
        await client.call_tool("tools.fail", {"why": canary})
        with pytest.raises(MCPError):
            await client.call_tool(f"tools.{canary}", {"text": canary})
    made_up = {"Authorization": f"Bearer sk-sg-{canary}"}
    assert httpx.post(approved.mcp_url, json={}, headers=made_up).status_code == 401
    rows = []
    for _ in range(100):
        rows = [r for r in approved.audit() if r["actor"] == f"key:{key_id}"]
        if len(rows) == 4:
            break
        await anyio.sleep(0.1)
    outcomes = sorted(r["detail"]["outcome"] for r in rows)
    assert outcomes == ["ok", "ok", "tool_error", "tool_not_found"]
    assert all(len(r["detail"]["arguments_sha256"]) == 64 for r in rows)
    metrics = approved.gateway.admin("GET", "/metrics").text
    assert 'sealgate_mcp_calls_total{server="tools",tool="echo",outcome="ok"}' in metrics
    searched = [approved.gateway.stderr(), metrics, str(approved.audit())]
    searched += [
        p.read_bytes().decode("latin-1")
        for p in Path(approved.gateway.data_dir).rglob("*")
        if p.is_file()
    ]
    for secret in (key, approved.upstream_token, canary):
        assert [text[:200] for text in searched if secret in text] == []


def test_a_session_opened_with_one_key_is_unknown_to_another(approved: Stack) -> None:
    owner, _ = approved.key("tools.echo")
    other, _ = approved.key("tools.echo")
    accept = {"Accept": "application/json, text/event-stream"}
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
    }
    opened = httpx.post(
        approved.mcp_url, json=initialize, headers={**accept, "Authorization": f"Bearer {owner}"}
    )
    assert opened.status_code == 200, opened.text
    session_id = opened.headers["mcp-session-id"]
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    for key, status in ((other, 404), (owner, 200)):
        headers = {
            **accept,
            "Authorization": f"Bearer {key}",
            "Mcp-Session-Id": session_id,
            "Mcp-Protocol-Version": "2025-11-25",
        }
        assert httpx.post(approved.mcp_url, json=listing, headers=headers).status_code == status


async def test_a_call_past_the_servers_timeout_is_refused_and_cancelled_upstream(
    approved: Stack,
) -> None:
    key, _ = approved.key("tools.slow")
    before = approved.tools.control("GET", "seen")["cancelled"]
    async with session(approved.mcp_url, key) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("tools.slow", {"seconds": 60})  # timeout_seconds: 5
    assert refused.value.error.message == "tool tools.slow did not answer within 5 s"
    assert refused.value.error.data == {"type": "upstream_error", "code": "upstream_timeout"}
    for _ in range(50):
        if approved.tools.control("GET", "seen")["cancelled"] > before:
            break
        await anyio.sleep(0.1)
    assert approved.tools.control("GET", "seen")["cancelled"] == before + 1


async def test_a_server_on_the_older_http_sse_transport_is_aggregated_too(approved: Stack) -> None:
    approved.approve("legacy", "echo", "count")
    key, _ = approved.key("legacy.*")
    steps: list[float] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append(progress)

    async with session(approved.mcp_url, key) as client:
        names = sorted(t.name for t in (await client.list_tools()).tools)
        assert names == ["legacy.count", "legacy.echo"]
        assert text_of(await client.call_tool("legacy.echo", {"text": "old"})) == "old"
        result = await client.call_tool("legacy.count", {"n": 2}, progress_callback=progress)
    assert text_of(result) == "counted to 2" and steps == [1.0, 2.0]


async def test_prompts_and_resources_are_offered_only_for_servers_granted_whole(
    approved: Stack,
) -> None:
    whole, _ = approved.key("tools.*")
    async with session(approved.mcp_url, whole) as client:
        prompts = (await client.list_prompts()).prompts
        assert [p.name for p in prompts] == ["tools.greet"]
        got = await client.get_prompt("tools.greet", {"name": "Ada"})
        message = got.messages[0].content
        assert isinstance(message, types.TextContent) and message.text == "Say hello to Ada."
        resources = (await client.list_resources()).resources
        assert [str(r.uri) for r in resources] == ["sealgate://tools/note%3A%2F%2Fmotto"]
        read = await client.read_resource("sealgate://tools/note%3A%2F%2Fmotto")
        assert [c.text for c in read.contents if isinstance(c, types.TextResourceContents)] == [
            "Every tool call is checked at the gate."
        ]
    one_tool, _ = approved.key("tools.echo")
    async with session(approved.mcp_url, one_tool) as client:
        assert (await client.list_prompts()).prompts == []
        assert (await client.list_resources()).resources == []
        with pytest.raises(MCPError):
            await client.get_prompt("tools.greet", {"name": "Ada"})
        with pytest.raises(MCPError):
            await client.read_resource("sealgate://tools/note%3A%2F%2Fmotto")


async def test_tool_calls_over_the_teams_limit_are_refused_whichever_key_makes_them(
    approved: Stack,
) -> None:
    # calls_per_minute_per_team is 3 in the stack's config
    team = approved.gateway.admin(
        "POST", "/admin/teams", json={"name": "l-" + secrets.token_hex(3)}
    )
    team_id = team.json()["id"]
    path = f"/admin/mcp/grants/teams/{team_id}"
    assert approved.gateway.admin("PUT", path, json={"tools": ["tools.echo"]}).status_code == 200
    first, _ = approved.key("tools.echo", team_id=team_id)
    second, _ = approved.key("tools.echo", team_id=team_id)
    async with session(approved.mcp_url, first) as one, session(approved.mcp_url, second) as two:
        passed, refused = await calls_until_refused([one, two], 7)
    assert passed >= 3 and refused.error.code == -32029
    assert "tool calls per minute of this team exhausted" in refused.error.message


def test_only_the_gateway_admin_may_read_or_change_the_mcp_gateway_and_changes_are_audited(
    approved: Stack,
) -> None:
    made = approved.gateway.admin(
        "POST", "/admin/tokens", json={"role": "viewer", "name": "v-" + secrets.token_hex(3)}
    )
    assert made.status_code == 201, made.text
    viewer = {"Authorization": f"Bearer {made.json()['token']}"}
    _, key_id = approved.key()
    for method, path, body in (
        ("GET", "/admin/mcp/servers", None),
        ("GET", "/admin/mcp/grants", None),
        ("PUT", f"/admin/mcp/grants/keys/{key_id}", {"tools": ["tools.*"]}),
        ("POST", "/admin/mcp/approvals", {"server": "tools", "tool": "big", "digest": "0" * 64}),
    ):
        url = approved.gateway.url + path
        assert httpx.request(method, url, headers=viewer, json=body).status_code == 403
    approved.grant_key(key_id, "tools.echo", "legacy.*")
    grants = approved.gateway.admin("GET", "/admin/mcp/grants").json()["data"]
    assert {"principal": f"key:{key_id}", "tools": ["legacy.*", "tools.echo"]} in grants
    rows = [
        r
        for r in approved.audit()
        if r["action"] == "mcp.grants" and r["target"] == f"key:{key_id}"
    ]
    assert [(r["actor"], r["action"], r["detail"]) for r in rows] == [
        ("admin", "mcp.grants", {"tools": ["legacy.*", "tools.echo"]})
    ]
    unknown = approved.gateway.admin(
        "PUT", f"/admin/mcp/grants/keys/{key_id}", json={"tools": ["nowhere.*"]}
    )
    assert unknown.status_code == 400 and "names no configured MCP server" in unknown.text
