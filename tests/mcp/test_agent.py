"""An agent using a tool through the MCP gateway: the OpenAI Agents SDK, its MCP client
(``MCPServerStreamableHttp``) pointed at /mcp with a virtual key, and its model the gateway's
own ``mock-gpt`` (the mock provider calls the first tool it is offered, then answers with what
the tool said), reached with the official openai SDK through the same gateway and key."""

from __future__ import annotations

import anyio
import pytest
from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
from agents.mcp import MCPServerStreamableHttp
from openai import AsyncOpenAI

from tests.mcp.stack import Stack
from tests.mcp.upstream_server import MOTTO

pytestmark = [pytest.mark.openbao, pytest.mark.anyio]


async def test_an_agent_calls_an_upstream_tool_through_the_gateway(stack: Stack) -> None:
    set_tracing_disabled(True)  # the SDK would otherwise send traces to OpenAI
    stack.approve("tools", "motto")
    key, key_id = stack.key("tools.motto")
    tools = MCPServerStreamableHttp(
        params={"url": stack.mcp_url, "headers": {"Authorization": f"Bearer {key}"}},
        name="sealgate",
    )
    async with AsyncOpenAI(base_url=stack.gateway.url + "/v1", api_key=key) as client, tools:
        agent = Agent(
            name="assistant",
            instructions="Answer with the house motto.",
            model=OpenAIChatCompletionsModel(model="mock-gpt", openai_client=client),
            mcp_servers=[tools],
        )
        result = await Runner.run(agent, "What is the house motto?")
    assert MOTTO in str(result.final_output)
    rows: list[dict[str, object]] = []
    for _ in range(100):
        rows = [r for r in stack.audit() if r["actor"] == f"key:{key_id}"]
        if rows:
            break
        await anyio.sleep(0.1)
    outcomes = [(r["target"], r["detail"]["outcome"]) for r in rows]  # type: ignore[index]
    assert outcomes == [("mcp:tools.motto", "ok")]
