"""The wire formats against the recorded provider replies (tests/assets/providers/): what the
Anthropic adapter makes of a documented message and stream, and what the OpenAI usage reader
makes of a documented completion and stream. Pure: no upstream, no gateway process."""

from __future__ import annotations

import json

from gateway.values import Usage
from gateway.wire import openai
from gateway.wire.anthropic.messages import completion_from_anthropic
from gateway.wire.anthropic.streams import ClientEventTranslator, UpstreamEventTranslator
from gateway.wire.sse import EventReader
from tests.support import recorded

TEXT = recorded.reply("openai", "chat_completion")["choices"][0]["message"]["content"]


def test_the_recordings_of_both_providers_carry_the_same_answer_text() -> None:
    message = recorded.reply("anthropic", "message")
    assert message["content"] == [{"type": "text", "text": TEXT}]


def test_an_anthropic_message_becomes_a_completion_with_cache_reads_counted_as_prompt() -> None:
    completion, usage = completion_from_anthropic(recorded.reply("anthropic", "message"), "claude")
    assert completion["choices"][0]["message"] == {"role": "assistant", "content": TEXT}
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert usage == Usage(prompt_tokens=13, completion_tokens=7, cached_tokens=2)


def test_an_anthropic_tool_use_becomes_an_openai_tool_call_with_json_arguments() -> None:
    completion, _ = completion_from_anthropic(
        recorded.reply("anthropic", "message_tool_use"), "claude"
    )
    choice = completion["choices"][0]
    (call,) = choice["message"]["tool_calls"]
    assert choice["finish_reason"] == "tool_calls"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def _deltas(chunks: list[bytes]) -> str:
    text = ""
    for chunk in chunks:
        if chunk == openai.DONE:
            continue
        for choice in json.loads(chunk.removeprefix(b"data: "))["choices"]:
            text += choice["delta"].get("content") or ""
    return text


def test_an_anthropic_stream_becomes_openai_chunks_with_the_whole_text_and_usage() -> None:
    translator = UpstreamEventTranslator("claude", include_usage=True)
    chunks: list[bytes] = []
    for item in recorded.reply("anthropic", "stream"):
        chunks += translator.feed(item["event"].encode(), json.dumps(item["data"]).encode())
    assert translator.done and chunks[-1] == openai.DONE
    assert _deltas(chunks).strip() == TEXT
    assert translator.usage == Usage(prompt_tokens=13, completion_tokens=7, cached_tokens=2)


def test_an_openai_stream_yields_its_usage_and_goes_back_out_as_anthropic_events() -> None:
    script = recorded.reply("openai", "chat_completion_stream")
    body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in script["events"])
    body += b"data: [DONE]\n\n"
    reader = EventReader(max_event_bytes=1 << 20)
    client = ClientEventTranslator("m")
    events: list[bytes] = []
    usages = []
    for start in range(0, len(body), 17):  # in small pieces, as a socket delivers them
        piece = body[start : start + 17]
        for framed in reader.feed(piece):
            if b'"usage"' in framed.data:
                usages.append(openai.usage_from(json.loads(framed.data)["usage"]))
        events += client.feed(piece)
    assert usages == [Usage(prompt_tokens=11, completion_tokens=7)]
    kinds = [e.split(b"\n", 1)[0].removeprefix(b"event: ").decode() for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    text = "".join(
        json.loads(e.split(b"data: ", 1)[1])["delta"]["text"]
        for e in events
        if e.startswith(b"event: content_block_delta")
    )
    assert text.strip() == TEXT
