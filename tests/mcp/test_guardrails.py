"""The guardrails over MCP tool calls, end to end: the SDK's client calls tools through a real
gateway (tests/mcp/stack.py) whose default policy masks personal data and blocks secrets. The
upstream ``echo`` tool answers the text it was sent, so what it answers is what it saw: a
call's arguments are masked before the upstream sees them; under a policy for answers only,
the arguments go through and the result is masked before the client sees it; a secret in
either blocks the call; every finding is an audit row by detector and count, never the text."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import mcp_types as types
import pytest
from mcp import MCPError

from tests.mcp.stack import Stack, session
from tests.secrets.openbao_server import OpenBao
from tests.secrets.vaultlab import VaultLab

pytestmark = [pytest.mark.openbao, pytest.mark.anyio]

CARD = "4111 1111 1111 1111"
EMAIL = "jane.roe@example.com"
OPENAI_KEY = "sk-proj-Zx9Qw3Er7Ty1Ui5Op0As2Df4Gh6Jk8Lm"
GUARDRAILS = """
guardrails:
  default: standard
  policies:
    standard:
      detectors: {personal: mask, secrets: block}
    answers:
      detectors: {personal: mask, secrets: block}
      stages: [response]
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    bao = OpenBao(tmp_path_factory.mktemp("openbao"))
    bao.start()
    lab = VaultLab(bao, tmp_path_factory.mktemp("lab"))
    running = Stack(lab, tmp_path_factory.mktemp("mcp"), GUARDRAILS).start()
    running.approve("tools", "echo")
    yield running
    running.stop()
    bao.stop()


def text_of(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def findings(stack: Stack, key_id: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        rows = [
            e["detail"]
            for e in reversed(stack.audit())
            if e["action"] == "guardrail.findings" and e["target"] == f"key:{key_id}"
        ]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


async def test_a_tool_calls_arguments_reach_the_upstream_masked(stack: Stack) -> None:
    key, key_id = stack.key("tools.echo")
    async with session(stack.mcp_url, key) as client:
        result = await client.call_tool("tools.echo", {"text": f"card {CARD}, mail {EMAIL}"})
    assert text_of(result) == "card [CARD], mail [EMAIL]"  # what the upstream was sent
    (row,) = findings(stack, key_id, 1)
    assert (row["stage"], row["findings"], row["tool"]) == (
        "mcp_arguments",
        {"card": 1, "email": 1},
        "tools.echo",
    )


async def test_a_secret_in_a_tool_calls_arguments_refuses_the_call_before_the_upstream(
    stack: Stack,
) -> None:
    key, key_id = stack.key("tools.echo")
    async with session(stack.mcp_url, key) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("tools.echo", {"text": f"use {OPENAI_KEY}"})
    assert caught.value.error.data == {"type": "invalid_request_error", "code": "guardrail_blocked"}
    assert OPENAI_KEY not in str(caught.value.error)
    deadline = time.monotonic() + 10
    while not (calls := [e for e in stack.audit() if e["actor"] == f"key:{key_id}"]):
        assert time.monotonic() < deadline, "the call's audit row"
        time.sleep(0.05)
    (call,) = calls
    assert (call["action"], call["target"]) == ("mcp.call", "mcp:tools.echo")
    assert call["detail"]["outcome"] == "guardrail_blocked"
    (row,) = findings(stack, key_id, 1)
    assert (row["stage"], row["blocked"]) == ("mcp_arguments", "openai_key")


async def test_under_a_policy_for_answers_a_tool_result_reaches_the_client_masked(
    stack: Stack,
) -> None:
    key, key_id = stack.key("tools.echo", metadata={"guardrail_policy": "answers"})
    async with session(stack.mcp_url, key) as client:
        result = await client.call_tool("tools.echo", {"text": f"mail {EMAIL}"})
        assert text_of(result) == "mail [EMAIL]"  # the upstream saw the address: masked after
        assert EMAIL not in json.dumps(result.structured_content)  # the SDK's copy as data
        with pytest.raises(MCPError) as caught:
            await client.call_tool("tools.echo", {"text": f"key {OPENAI_KEY}"})
    assert caught.value.error.data["code"] == "guardrail_blocked"
    rows = findings(stack, key_id, 2)
    assert [(r["stage"], r["findings"], r["blocked"]) for r in rows] == [
        ("mcp_result", {"email": 2}, None),  # the text block and the structured content
        ("mcp_result", {"openai_key": 1}, "openai_key"),
    ]
    dumped = json.dumps(stack.audit())
    assert EMAIL not in dumped and OPENAI_KEY not in dumped
