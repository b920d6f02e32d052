"""``gateway.wire.gemini``: the OpenAI <-> generateContent translation, on its own (the wire
end to end is in test_google_upstream.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.errors import InvalidRequest, UpstreamError
from gateway.wire import gemini
from tests.support import recorded


def chunks(out: list[bytes]) -> list[dict[str, Any]]:
    return [json.loads(c[6:]) for c in out if c.startswith(b"data: {")]


def test_a_stream_without_a_finish_reason_is_not_done() -> None:
    translator = gemini.StreamTranslator("m", False)
    first = recorded.reply("google", "stream_generate_content")[0]
    translator.feed(json.dumps(first).encode())
    assert not translator.done  # the adapter ends such a stream with UpstreamTruncated


def test_an_error_event_mid_stream_is_an_upstream_error_without_its_message() -> None:
    translator = gemini.StreamTranslator("m", False)
    event = {"error": {"code": 500, "message": "secret-ish detail", "status": "INTERNAL"}}
    with pytest.raises(UpstreamError) as caught:
        translator.feed(json.dumps(event).encode())
    assert "secret-ish" not in caught.value.message
    with pytest.raises(UpstreamError, match="invalid stream event"):
        translator.feed(b"{not json")


def test_streamed_usage_is_the_last_reported_with_thinking_as_output() -> None:
    translator = gemini.StreamTranslator("m", True)
    out: list[bytes] = []
    for event in recorded.reply("google", "stream_generate_content"):
        out += translator.feed(json.dumps(event).encode())
    out += translator.end()
    assert out[-1] == b"data: [DONE]\n\n"
    usage = chunks(out)[-1]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (11, 7)
    assert usage["prompt_tokens_details"] == {"cached_tokens": 4}


def test_n_candidates_become_n_choices() -> None:
    answer = recorded.reply("google", "generate_content")
    answer["candidates"].append({**answer["candidates"][0], "index": 1})
    completion, _ = gemini.completion_from_gemini(answer, "m")
    assert [c["index"] for c in completion["choices"]] == [0, 1]
    request = gemini.request_to_gemini({"messages": [{"role": "user", "content": "x"}], "n": 2})
    assert request["generationConfig"] == {"candidateCount": 2}


def test_a_named_tool_choice_allows_only_that_function() -> None:
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
    }
    config = gemini.request_to_gemini(body)["toolConfig"]
    assert config == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}}


def test_thought_parts_are_left_out_of_the_answer() -> None:
    answer = recorded.reply("google", "generate_content")
    parts = answer["candidates"][0]["content"]["parts"]
    parts.insert(0, {"text": "thinking about it", "thought": True})
    completion, _ = gemini.completion_from_gemini(answer, "m")
    assert completion["choices"][0]["message"]["content"] == "Hello from Gemini."


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}], "logprobs": True}, "logprobs"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "https://e.com/a.png"}}
                        ],
                    }
                ]
            },
            "messages",
        ),
        ({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}, "messages"),
        ({"messages": [{"role": "system", "content": "only a system"}]}, "messages"),
        (
            {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "x"}},
            "response_format",
        ),
    ],
)
def test_what_gemini_cannot_take_is_a_400_naming_it(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        gemini.request_to_gemini(body)
    assert caught.value.param == param


def test_consecutive_tool_answers_go_in_one_user_turn() -> None:
    calls = [
        {"id": f"c{i}", "type": "function", "function": {"name": f"f{i}", "arguments": "{}"}}
        for i in range(2)
    ]
    body = {
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "c0", "content": "1"},
            {"role": "tool", "tool_call_id": "c1", "content": "two"},
        ]
    }
    turns = gemini.request_to_gemini(body)["contents"]
    assert [t["role"] for t in turns] == ["user", "model", "user"]
    assert [p["functionResponse"] for p in turns[2]["parts"]] == [
        {"name": "f0", "response": {"result": 1}},
        {"name": "f1", "response": {"result": "two"}},
    ]
