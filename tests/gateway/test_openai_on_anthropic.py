"""OpenAI clients on an Anthropic deployment (issue 14, item 4), over real HTTP through a running
gateway to the fake Anthropic upstream: ``response_format`` is served through a forced tool call
(so the openai SDK's ``parse`` and LangChain's ``with_structured_output`` default work), ``n > 1``
and the parameters Anthropic has no equivalent for are refused with a message naming them."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import openai
import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from gateway.wire.anthropic.messages import FORMAT_TOOL
from tests.gateway.conftest import claude_gateway
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

KEY = "sk-ant-fake-" + secrets.token_urlsafe(24)


class Weather(BaseModel):
    city: str


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("openai-on-anthropic")
    yield from claude_gateway(workdir, upstream_server, KEY)


@pytest.fixture(scope="module")
def key(gateway: GatewayProcess) -> str:
    return str(gateway.create_key(["claude"])["key"])


@pytest.fixture(scope="module")
def sdk(gateway: GatewayProcess, key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as made:
        yield made


USER: list[dict[str, str]] = [{"role": "user", "content": "weather in Paris, as JSON"}]


def test_json_schema_response_format_is_a_forced_tool_call_whose_input_is_the_answer(
    sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    parsed = sdk.chat.completions.parse(model="claude", messages=USER, response_format=Weather)  # type: ignore[arg-type]
    choice = parsed.choices[0]
    assert choice.message.parsed == Weather(city="Paris")
    assert choice.message.tool_calls is None or choice.message.tool_calls == []
    assert choice.finish_reason == "stop"
    sent = upstream.requests[-1].body
    assert sent["tool_choice"] == {"type": "tool", "name": FORMAT_TOOL}
    (tool,) = sent["tools"]
    assert tool["name"] == FORMAT_TOOL
    assert tool["input_schema"]["properties"] == {"city": {"title": "City", "type": "string"}}


def test_json_schema_response_format_streams_the_answer_as_text(
    sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    stream = sdk.chat.completions.create(
        model="claude",
        messages=USER,  # type: ignore[arg-type]
        stream=True,
        response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}},
    )
    text, finish, calls = "", None, 0
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            calls += len(choice.delta.tool_calls or [])
            finish = choice.finish_reason or finish
    assert json.loads(text) == {"city": "Paris"}
    assert (finish, calls) == ("stop", 0)


def test_langchain_with_structured_output_default_works_on_an_anthropic_deployment(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    model = ChatOpenAI(
        model="claude", base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=10
    )  # type: ignore[call-arg]
    answer = model.with_structured_output(Weather).invoke("weather in Paris?")
    assert answer == Weather(city="Paris")
    assert upstream.requests[-1].body["tool_choice"]["name"] == FORMAT_TOOL


def test_response_format_with_tools_is_refused_with_a_reason(
    sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="claude",
            messages=USER,  # type: ignore[arg-type]
            tools=tools,  # type: ignore[arg-type]
            response_format={"type": "json_object"},
        )
    assert "forced tool call" in str(caught.value)
    assert upstream.requests == []


def test_n_above_one_is_refused_naming_n(sdk: openai.OpenAI, upstream: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="claude", messages=USER, n=3)  # type: ignore[arg-type]
    assert "'n'" in str(caught.value)
    assert upstream.requests == []


def test_every_unsupported_parameter_is_named_in_one_refusal(
    sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="claude",
            messages=USER,  # type: ignore[arg-type]
            seed=1,
            logprobs=True,
            presence_penalty=0.5,
        )
    message = str(caught.value)
    assert "'seed'" in message and "'logprobs'" in message and "'presence_penalty'" in message
    assert upstream.requests == []
