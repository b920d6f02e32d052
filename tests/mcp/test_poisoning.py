"""Tool poisoning: an approved tool whose upstream changes its description (or input schema)
is disabled until an operator approves it again, and the admin API says why. A stack of its
own, since the upstream's tool is changed for good."""

from __future__ import annotations

import pytest
from mcp import MCPError

from tests.mcp.stack import Stack, session
from tests.mcp.upstream_server import POISONED

pytestmark = [pytest.mark.openbao, pytest.mark.anyio]


async def test_a_changed_description_disables_the_tool_until_it_is_approved_again(
    stack: Stack,
) -> None:
    stack.approve("tools", "echo", "count")
    key, _ = stack.key("tools.*")
    async with session(stack.mcp_url, key) as client:
        assert sorted(t.name for t in (await client.list_tools()).tools) == [
            "tools.count",
            "tools.echo",
        ]
        approved_digest = stack.offered("tools")["echo"]["digest"]

        stack.tools.control("POST", "poison")

        assert [t.name for t in (await client.list_tools()).tools] == ["tools.count"]
        with pytest.raises(MCPError) as refused:
            await client.call_tool("tools.echo", {"text": "x"})
        assert refused.value.error.code == -32602
        echo = stack.offered("tools")["echo"]
        assert echo["status"] == "changed"
        assert "description or input schema changed" in echo["reason"]
        assert echo["digest"] != approved_digest and echo["description"] == POISONED

        # an approval of the digest the operator saw before the change is refused
        stale = {"server": "tools", "tool": "echo", "digest": approved_digest}
        conflict = stack.gateway.admin("POST", "/admin/mcp/approvals", json=stale)
        assert conflict.status_code == 409
        assert conflict.json()["error"]["code"] == "digest_mismatch"

        stack.approve("tools", "echo")  # the operator reviewed the new description
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert listed["tools.echo"].description == POISONED
        assert (await client.call_tool("tools.echo", {"text": "y"})).is_error is False
    actions = [(r["action"], r["target"]) for r in stack.audit() if r["action"] == "mcp.approve"]
    assert actions.count(("mcp.approve", "mcp:tools.echo")) == 2
