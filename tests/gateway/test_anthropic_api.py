"""The Anthropic-compatible API, driven by the official ``anthropic`` SDK over real HTTP: any
deployment (OpenAI-format upstream, the mock) answers in Anthropic's wire format."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import pytest

from tests.gateway.conftest import PROVIDER_KEY
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

TOOLS = [{"name": "get_weather", "description": "weather", "input_schema": {"type": "object"}}]


@pytest.fixture(scope="module")
def key(gateway: GatewayProcess) -> str:
    return str(gateway.create_key(["fake-gpt", "mock-gpt"])["key"])


@pytest.fixture(scope="module")
def sdk(gateway: GatewayProcess, key: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as made:
        yield made


def test_messages_call_is_served_by_an_openai_format_deployment(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    message = sdk.messages.create(
        model="fake-gpt",
        max_tokens=64,
        system="be brief",
        messages=[{"role": "user", "content": "hi"}],
        stop_sequences=["END"],
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == FakeUpstream.REPLY_TEXT
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 7)
    sent = upstream.requests[-1]
    assert sent.headers["Authorization"] == f"Bearer {PROVIDER_KEY}"
    assert sent.body["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent.body["max_tokens"] == 64 and sent.body["stop"] == ["END"]


def test_tool_use_round_trip_in_anthropic_shape(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    first = sdk.messages.create(
        model="fake-gpt",
        max_tokens=64,
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "weather in Paris?"}],
    )
    assert first.stop_reason == "tool_use"
    use = first.content[0]
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == {"city": "Paris"}
    second = sdk.messages.create(
        model="fake-gpt",
        max_tokens=64,
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": first.content},  # type: ignore[typeddict-item]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}],
            },
        ],
    )
    assert second.content[0].type == "text"
    assert second.content[0].text == "The tool said: sunny"
    assert upstream.requests[-1].body["messages"][-1] == {
        "role": "tool",
        "tool_call_id": use.id,
        "content": "sunny",
    }


def test_streaming_in_anthropic_events(sdk: anthropic.Anthropic, upstream: FakeUpstream) -> None:
    with sdk.messages.stream(
        model="fake-gpt", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.split() == FakeUpstream.REPLY_TEXT.split()
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 7


def test_streamed_tool_use_arrives_whole(sdk: anthropic.Anthropic) -> None:
    with sdk.messages.stream(
        model="mock-gpt",
        max_tokens=64,
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "weather?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use" and final.content[0].name == "get_weather"


def test_errors_are_anthropic_shaped(gateway: GatewayProcess, key: str) -> None:
    with (
        anthropic.Anthropic(base_url=gateway.url, api_key="sk-sg-nope", max_retries=0) as bad,
        pytest.raises(anthropic.AuthenticationError),
    ):
        bad.messages.create(
            model="fake-gpt", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    with (
        anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as good,
        pytest.raises(anthropic.NotFoundError) as caught,
    ):
        good.messages.create(
            model="ghost", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "model 'ghost' does not exist"},
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "fake-gpt", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "fake-gpt", "max_tokens": 5, "messages": [], "best_of": 3}, "best_of"),
        (
            {
                "model": "fake-gpt",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "base_url": "http://x",
            },
            "base_url",
        ),
    ],
)
def test_bad_messages_requests_are_400_and_name_the_field(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream, body: dict[str, object], param: str
) -> None:
    response = httpx.post(
        gateway.url + "/v1/messages", json=body, headers={"x-api-key": key}, timeout=10
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert param in response.json()["error"]["message"]
    assert upstream.requests == []
