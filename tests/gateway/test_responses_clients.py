"""Issue 14: the clients users point at ``/v1/responses``, against a running gateway, each over
an OpenAI deployment (passed through) and an Anthropic one (translated): LangChain's
``ChatOpenAI(use_responses_api=True)`` (invoke, stream, a bound tool), and the OpenAI Agents
SDK's Responses model running one agent turn that calls a function tool and answers with what
it returned. The upstream is the fake that replays the providers' recorded replies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from langchain_core.messages import AIMessage
from langchain_openai import ChatOpenAI
from openai import AsyncOpenAI
from pydantic import SecretStr

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

PROVIDER_KEY = "sk-clients-fake-provider-key-0123456789abcdef"
TEXT = FakeUpstream.REPLY_TEXT
CONFIG = """
deployments:
  - model: gpt
    provider: openai
    upstream_model: upstream-gpt
    base_url: {upstream}/v1
    credential: env:FAKE_PROVIDER_KEY
    allow_private_network: true
  - model: claude
    provider: anthropic
    upstream_model: claude-up
    base_url: {upstream}
    credential: env:FAKE_PROVIDER_KEY
    allow_private_network: true
router:
  retries: 0
verify:
  mode: "off"
governance:
  default_prices: {{input: "0"}}
"""
MODELS = ["gpt", "claude"]
UPSTREAM_PATH = {"gpt": "/v1/responses", "claude": "/v1/messages"}


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir: Path = tmp_path_factory.mktemp("clients-gateway")
    config = CONFIG.format(upstream=upstream_server.base_url)
    process = GatewayProcess(workdir, config, env={"FAKE_PROVIDER_KEY": PROVIDER_KEY}).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def key(gateway: GatewayProcess) -> str:
    created: str = gateway.create_key(MODELS)["key"]
    return created


def chat_model(gateway: GatewayProcess, key: str, model: str) -> ChatOpenAI:
    return ChatOpenAI(
        model=model,
        base_url=gateway.url + "/v1",
        api_key=SecretStr(key),
        use_responses_api=True,
        max_retries=0,
    )


@pytest.mark.parametrize("model", MODELS)
def test_langchain_with_the_responses_api_invokes_and_streams_through_the_gateway(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream, model: str
) -> None:
    llm = chat_model(gateway, key, model)
    answer = llm.invoke("Say hello")
    assert isinstance(answer, AIMessage) and answer.text.strip() == TEXT
    assert answer.usage_metadata is not None and answer.usage_metadata["output_tokens"] == 7
    pieces = list(llm.stream("Say hello"))
    assert "".join(p.text for p in pieces).strip() == TEXT
    assert {r.path for r in upstream.requests} == {UPSTREAM_PATH[model]}


@pytest.mark.parametrize("model", MODELS)
def test_langchain_with_the_responses_api_gets_a_tool_call_back(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream, model: str
) -> None:
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    answer = chat_model(gateway, key, model).bind_tools([get_weather]).invoke("Paris weather?")
    assert isinstance(answer, AIMessage)
    (call,) = answer.tool_calls
    assert call["name"] == "get_weather" and call["args"] == {"city": "Paris"}


@pytest.mark.anyio
@pytest.mark.parametrize("model", MODELS)
async def test_an_agents_sdk_turn_calls_a_tool_and_answers_through_the_gateway(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream, model: str
) -> None:
    set_tracing_disabled(True)  # the SDK would otherwise send traces to OpenAI
    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"sunny in {city}"

    async with AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as client:
        agent = Agent(
            name="forecaster",
            instructions="Answer with the weather.",
            model=OpenAIResponsesModel(model=model, openai_client=client),
            tools=[get_weather],
        )
        result = await Runner.run(agent, "What is the weather in Paris?")
    assert calls == ["Paris"]
    assert result.final_output
    posted = [r for r in upstream.requests if r.method == "POST"]
    assert [r.path for r in posted] == [UPSTREAM_PATH[model]] * 2
    last = posted[-1].body
    if model == "gpt":  # the tool's output went back as a function_call_output item
        assert last["input"][-1] == {
            "type": "function_call_output",
            "call_id": "call_fake_1",
            "output": "sunny in Paris",
        }
        assert result.final_output == "The tool said: sunny in Paris"
    else:  # ... and as Anthropic's tool_result block
        (result_block,) = [
            b
            for m in last["messages"]
            if isinstance(m["content"], list)
            for b in m["content"]
            if b["type"] == "tool_result"
        ]
        assert result_block["content"] == "sunny in Paris"
