"""The pure halves of the Messages route (no server): what a translated deployment ignores and
refuses, by name; the pass-through body; beta filtering; the stream monitor's usage and its
refusal of error events and non-JSON; one ``msg_`` prefix whatever the upstream's id."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import InvalidRequest, UpstreamError
from gateway.wire.anthropic import ingress, native
from gateway.wire.sse import EventReader

BASE: dict[str, Any] = {
    "model": "m",
    "max_tokens": 10,
    "messages": [{"role": "user", "content": "hi"}],
}


def _translate(**fields: Any) -> ingress.Translated:
    body = {**BASE, **fields}
    ingress.check(body)
    return ingress.translate(body)


def test_a_plain_request_translates_with_nothing_ignored_or_refused() -> None:
    out = _translate(system="s")
    assert out.ignored == [] and out.refused == [] and out.refusal("x") is None
    assert out.body["messages"] == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
    ]


def test_every_field_that_would_change_the_answer_is_refused_by_name_in_one_error() -> None:
    out = _translate(
        top_k=3,
        inference_geo="eu",
        tools=[{"type": "web_search_20250305", "name": "web_search"}, {"name": "f"}],
        output_config={"task_budget": {"type": "tokens", "total": 5}},
    )
    assert out.refused == [
        "top_k",
        "inference_geo",
        "server tool 'web_search_20250305'",
        "output_config.task_budget",
    ]
    error = out.refusal("deployment d (openai) does not speak the Anthropic Messages API")
    assert isinstance(error, InvalidRequest)
    assert "top_k" in error.message and "web_search_20250305" in error.message
    assert [t["function"]["name"] for t in out.body["tools"]] == ["f"]  # never an empty one


def test_fields_whose_loss_keeps_the_meaning_are_ignored_by_name() -> None:
    thinking_turn = {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "t", "signature": "s"},
            {"type": "redacted_thinking", "data": "d"},
            {"type": "text", "text": "answer", "cache_control": {"type": "ephemeral"}},
        ],
    }
    out = _translate(
        messages=[*BASE["messages"], thinking_turn, {"role": "user", "content": "more"}],
        thinking={"type": "adaptive"},
        context_management={"edits": []},
        output_config={"effort": "high"},
        metadata={"user_id": "u", "other": "x"},
        speed="fast",
    )
    assert set(out.ignored) == {
        "thinking blocks",
        "cache_control",
        "thinking",
        "context_management",
        "output_config.effort",
        "metadata",
        "speed",
    }
    assert out.refused == []
    assert out.body["messages"][1] == {"role": "assistant", "content": "answer"}
    assert out.body["user"] == "u"


def test_output_config_format_becomes_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    out = _translate(output_config={"format": {"type": "json_schema", "schema": schema}})
    assert out.body["response_format"]["json_schema"]["schema"] == schema


def test_an_image_in_a_tool_result_is_refused_not_dropped() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
    turns = [
        {"role": "user", "content": "look"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t", "content": [image]}],
        },
    ]
    assert _translate(messages=turns).refused == ["tool_result block 'image'"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"thinking": "on"}, "thinking"),
        ({"top_k": -1}, "top_k"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0]"),
        (
            {"messages": [{"role": "user", "content": [{"type": "thinking", "thinking": "t"}]}]},
            "messages[0].content[0].signature",
        ),
        ({"context_management": []}, "context_management"),
    ],
)
def test_malformed_fields_are_refused_on_every_path(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        ingress.check({**BASE, **fields})
    assert caught.value.param == param


def test_the_pass_through_changes_only_the_model() -> None:
    raw = {**BASE, "messages": [*BASE["messages"], {"role": "system", "content": "mid"}]}
    assert native.request(raw, "claude-x") == {**raw, "model": "claude-x"}


def test_betas_are_split_by_the_allowlist_and_only_beta_names_are_named_back() -> None:
    kept, dropped = native.betas(b" a-2025-01-01 , b-2025-01-01,sk-secret,", {"a-2025-01-01"})
    assert kept == ["a-2025-01-01"] and dropped == ["b-2025-01-01", "sk-secret"]
    assert native.ignored_betas(dropped) == "b-2025-01-01,(1 value(s) that are not beta names)"
    assert native.betas(None, {"x"}) == ([], [])
    assert "oauth-2025-04-20" not in native.DEFAULT_BETAS


def _events(text: str) -> list[Any]:
    return EventReader(1 << 16).feed(text.encode())


def test_the_stream_monitor_reads_usage_and_passes_events_on_byte_for_byte() -> None:
    stream = (
        'event: message_start\ndata: {"type":"message_start","message":{"usage":'
        '{"input_tokens":5,"cache_read_input_tokens":2,"output_tokens":1}}}\n\n'
        'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":9}}\n\n'
        'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    monitor = native.NativeEventMonitor()
    out = b"".join(monitor.feed(e) for e in _events(stream))
    assert out == stream.encode()
    assert monitor.done
    assert (monitor.usage.prompt_tokens, monitor.usage.completion_tokens) == (7, 9)
    assert monitor.usage.cached_tokens == 2


@pytest.mark.parametrize(
    "event",
    [
        'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"}}\n\n',
        "event: message_start\ndata: {not json\n\n",
    ],
)
def test_the_stream_monitor_refuses_error_events_and_invalid_ones(event: str) -> None:
    with pytest.raises(UpstreamError):
        native.NativeEventMonitor().feed(_events(event)[0])


@pytest.mark.parametrize("upstream_id", ["msg_abc", "chatcmpl-abc", "chatcmpl-msg_abc", "abc"])
def test_message_ids_have_one_prefix(upstream_id: str) -> None:
    assert native.message_id(upstream_id) == "msg_abc"
