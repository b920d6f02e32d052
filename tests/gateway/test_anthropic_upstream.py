"""An `anthropic` deployment, called with the official openai SDK through a running gateway:
the Messages API wire format on the way out, OpenAI's on the way back, streaming included."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import openai
import pytest

from tests.gateway.conftest import claude_gateway
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

KEY = "sk-ant-fake-" + secrets.token_urlsafe(24)
PRICED = """verify:
  mode: "off"
governance:
  deployments:
    claude/anthropic: {prices: {input: "3", cached_input: "0.30", output: "15"}}
"""
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
]


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("anthropic")
    yield from claude_gateway(workdir, upstream_server, KEY, PRICED)


@pytest.fixture(scope="module")
def sdk(gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    key = gateway.create_key(["claude"])["key"]
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as made:
        yield made


def test_chat_goes_out_as_a_messages_call_with_the_anthropic_headers(
    sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    reply = sdk.chat.completions.create(
        model="claude",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    )
    assert reply.choices[0].message.content == FakeUpstream.REPLY_TEXT
    assert reply.usage is not None and reply.usage.prompt_tokens == 13
    seen = upstream.requests[-1]
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == KEY and seen.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in seen.headers
    assert seen.body["model"] == "claude-sonnet-4-5" and seen.body["system"] == "be brief"


def test_tool_call_round_trip_through_anthropic(sdk: openai.OpenAI, upstream: FakeUpstream) -> None:
    messages: list[dict[str, object]] = [{"role": "user", "content": "weather in Paris?"}]
    first = sdk.chat.completions.create(model="claude", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = sdk.chat.completions.create(model="claude", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    assert second.choices[0].message.content == FakeUpstream.REPLY_TEXT
    assert upstream.requests[-1].body["messages"][-1]["content"][0]["type"] == "tool_result"


def test_streaming_is_translated_chunk_by_chunk_with_usage(
    sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    stream = sdk.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert text.split() == FakeUpstream.REPLY_TEXT.split()
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == 7


def test_a_parameter_anthropic_lacks_is_a_400_naming_it(
    sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.BadRequestError, match="logprobs"):
        sdk.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "x"}], logprobs=True
        )
    assert upstream.requests == []


def test_an_overloaded_lone_deployment_is_not_asked_again_in_the_same_request(
    sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    # Issue 13.7: a deployment that just failed is in cooldown and not retried within the
    # request (the client's own retry, or the next request, asks it again).
    upstream.then(status=529)
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model="claude", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 503
    assert len(upstream.requests) == 1
    reply = sdk.chat.completions.create(model="claude", messages=[{"role": "user", "content": "x"}])
    assert reply.choices[0].message.content == FakeUpstream.REPLY_TEXT


def test_anthropic_overloaded_throughout_is_503(sdk: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.default.status = 529
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model="claude", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 503
