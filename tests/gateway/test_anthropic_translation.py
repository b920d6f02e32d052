"""OpenAI-shaped chat requests translate to Anthropic Messages and back (pure functions)."""

from __future__ import annotations

import json

import pytest

from gateway.errors import InvalidRequest, UpstreamError
from gateway.wire.anthropic.messages import completion_from_anthropic as to_openai
from gateway.wire.anthropic.messages import request_to_anthropic as to_anthropic
from gateway.wire.anthropic.streams import UpstreamEventTranslator as StreamTranslator


def test_system_messages_become_the_system_field_and_roles_alternate() -> None:
    body = {
        "model": "claude",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "one"},
            {"role": "user", "content": [{"type": "text", "text": "two"}]},
        ],
        "max_tokens": 10,
        "stop": "END",
        "temperature": 0.3,
        "user": "u-1",
    }
    out = to_anthropic(body, "claude-sonnet-4-5")
    assert out["system"] == "be brief"
    assert out["model"] == "claude-sonnet-4-5"
    assert out["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        }
    ]
    assert out["max_tokens"] == 10 and out["stop_sequences"] == ["END"]
    assert out["temperature"] == 0.3 and out["metadata"] == {"user_id": "u-1"}


def test_max_tokens_defaults_because_anthropic_requires_it() -> None:
    out = to_anthropic({"model": "c", "messages": [{"role": "user", "content": "x"}]}, "c")
    assert out["max_tokens"] == 4096


def test_images_become_base64_or_url_blocks() -> None:
    content = [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    out = to_anthropic({"model": "c", "messages": [{"role": "user", "content": content}]}, "c")
    blocks = out["messages"][0]["content"]
    assert blocks[0]["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": "iVBORw0KGgo=",
    }
    assert blocks[1]["source"] == {"type": "url", "url": "https://example.com/cat.jpg"}


def test_tool_calls_and_results_round_trip_to_tool_use_and_tool_result() -> None:
    body = {
        "model": "c",
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": "get_weather", "parameters": {"type": "object"}},
            }
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
    }
    out = to_anthropic(body, "c")
    assert out["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
    ]
    assert out["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}],
    }
    assert out["tools"] == [
        {"name": "get_weather", "description": "", "input_schema": {"type": "object"}}
    ]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


@pytest.mark.parametrize("name", ["logprobs", "response_format", "presence_penalty", "seed"])
def test_parameters_without_an_anthropic_equivalent_are_refused_by_name(name: str) -> None:
    body = {"model": "c", "messages": [{"role": "user", "content": "x"}], name: 1}
    with pytest.raises(InvalidRequest) as caught:
        to_anthropic(body, "c")
    assert caught.value.param == name


def test_an_answer_becomes_a_chat_completion_with_usage_including_cache_reads() -> None:
    message = {
        "id": "msg_1",
        "content": [
            {"type": "text", "text": "Calling."},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 4},
    }
    completion, usage = to_openai(message, "claude")
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Calling."
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a": 1}'}
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (14, 5, 4)


def events(*pairs: tuple[str, dict[str, object]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), json.dumps({"type": k, **v}).encode()) for k, v in pairs]


def test_a_stream_translates_to_chunks_ending_with_usage_and_done() -> None:
    translator = StreamTranslator("claude", include_usage=True)
    out: list[bytes] = []
    for event, data in events(
        (
            "message_start",
            {"message": {"id": "m1", "usage": {"input_tokens": 9, "output_tokens": 1}}},
        ),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        (
            "content_block_start",
            {"index": 1, "content_block": {"type": "tool_use", "id": "t1", "name": "f"}},
        ),
        (
            "content_block_delta",
            {"index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
        ),
        ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 6}}),
        ("message_stop", {}),
    ):
        out += translator.feed(event, data)
    chunks = [json.loads(c[6:]) for c in out if c != b"data: [DONE]\n\n"]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[1]["choices"][0]["delta"] == {"content": "Hi"}
    assert chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "f"
    assert chunks[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert chunks[4]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[5]["usage"]["prompt_tokens"] == 9 and chunks[5]["usage"]["completion_tokens"] == 6
    assert out[-1] == b"data: [DONE]\n\n"


def test_an_error_event_mid_stream_is_an_upstream_error() -> None:
    translator = StreamTranslator("claude", include_usage=False)
    with pytest.raises(UpstreamError):
        translator.feed(b"error", b'{"type": "error", "error": {"type": "overloaded_error"}}')
