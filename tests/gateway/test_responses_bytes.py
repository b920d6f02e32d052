"""The exact bytes ``/v1/responses`` sends a client from a translated (chat) deployment: the
Responses object made from a chat answer, and the Responses event stream made from a chat
stream (from its bytes, and from an OpenAI-format upstream stream, which hands its chunks over
parsed: the same bytes either way). Pinned against ``data/responses_bytes.json`` (written from
the translation before it was made faster, issue 14's performance item) so that an optimisation
cannot change a byte. Only the random ids and the stream's clock are normalised: ids to
``<prefix>_<n>`` by first appearance, ``created_at`` to 0. Pure functions over real chat wire
bytes; no network."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import MAX_EVENT_BYTES
from gateway.errors import UpstreamError
from gateway.values import Usage
from gateway.wire import openai
from gateway.wire import responses as wire
from gateway.wire.sse import EventReader
from tests.support.replayed import drained, run_now, upstream_stream

GOLDEN: dict[str, str] = json.loads(
    (Path(__file__).parent / "data" / "responses_bytes.json").read_text()
)
IDS = re.compile(rb"\b(resp|msg|fc|ctc|call)_[0-9a-f]{32}\b")
CLOCK = re.compile(rb'"created_at": \d+')
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
TOOLS: list[dict[str, Any]] = [
    WEATHER,
    {"type": "namespace", "name": "agents", "description": "d", "tools": [WEATHER]},
    {"type": "custom", "name": "apply_patch", "description": "patch files"},
]
BODIES: dict[str, dict[str, Any]] = {
    "plain": {"model": "m", "input": "Say hello"},
    "full": {
        "model": "m",
        "instructions": "Be brief \u00e9\u2603",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        "tools": TOOLS,
        "tool_choice": "auto",
        "temperature": 0.2,
        "top_p": 0.9,
        "max_output_tokens": 256,
        "reasoning": {"effort": "low"},
        "text": {"verbosity": "low"},
        "metadata": {"k": "v"},
        "store": False,
        "parallel_tool_calls": False,
        "user": "u-1",
    },
}
USAGE = Usage(30, 12, 4)


def normalised(data: bytes) -> str:
    seen: dict[bytes, bytes] = {}

    def name(found: re.Match[bytes]) -> bytes:
        token = found.group(0)
        if token not in seen:
            seen[token] = found.group(1) + b"_%d" % len(seen)
        return seen[token]

    return CLOCK.sub(b'"created_at": 0', IDS.sub(name, data)).decode()


def completion(message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42},
    }


CALLS = [
    {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
    {"type": "function", "function": {"name": "agents__get_weather", "arguments": '{"c": 1}'}},
    {"id": "call_c", "function": {"name": "apply_patch", "arguments": '{"input": "*** p"}'}},
]
ANSWERS: dict[str, dict[str, Any]] = {
    "text": completion({"role": "assistant", "content": 'Hello "there"\n\u00e9'}, "stop"),
    "tools": completion(
        {"role": "assistant", "content": "Let me.", "tool_calls": CALLS}, "tool_calls"
    ),
    "refusal": completion({"role": "assistant", "content": None, "refusal": "No."}, "stop"),
    "length": completion({"role": "assistant", "content": "cut"}, "length"),
}


def answer_bytes(answer: str, body: str) -> bytes:
    """What the route sends for a translated, non-streamed answer: the adapter's parsed answer
    (``Reply.parsed``) as a Responses object, written out."""
    request = dict(BODIES[body])
    translation = wire.request_to_chat(request, [])
    parsed = json.loads(json.dumps(ANSWERS[answer]))
    response = wire.response_from_chat(
        parsed, request, translation.tools, USAGE, wire.new_id("resp")
    )
    return json.dumps(response).encode()


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return openai.chunk("c", 1, "m", delta, finish)


def call_delta(index: int, **fields: Any) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, **fields}]}


STREAMS: dict[str, list[bytes]] = {
    "text": [
        chunk({"role": "assistant", "content": ""}),
        *[chunk({"content": f'word{i} \u00e9"\n'}) for i in range(20)],
        chunk({}, "stop"),
        openai.usage_chunk("c", 1, "m", USAGE),
        openai.DONE,
    ],
    "tools": [
        chunk({"role": "assistant", "content": "Let me."}),
        chunk(call_delta(0, id="call_a", function={"name": "get_weather", "arguments": ""})),
        chunk(call_delta(0, function={"arguments": '{"city"'})),
        chunk(call_delta(0, function={"arguments": ': "Paris"}'})),
        chunk(call_delta(1, function={"name": "agents__get_weather", "arguments": "{}"})),
        chunk(call_delta(2, id="call_c", function={"name": "apply_patch"})),
        chunk(call_delta(2, function={"arguments": '{"input": "*** '})),
        chunk(call_delta(2, function={"arguments": 'p"}'})),
        chunk({}, "tool_calls"),
        openai.DONE,
    ],
    "length": [chunk({"content": "cut"}), chunk({}, "length"), openai.DONE],
}


class Replay:
    def __init__(self, pieces: list[bytes], usage: Usage | None) -> None:
        self.pieces = pieces
        self.usage = usage

    async def chunks(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece

    async def aclose(self) -> None:
        return None


def stream_bytes(stream: str, body: str) -> bytes:
    request = {**BODIES[body], "stream": True}
    translation = wire.request_to_chat(request, [])
    usage = USAGE if stream == "text" else None
    events = wire.ResponsesEventStream(
        Replay(STREAMS[stream], usage), request, translation.tools, wire.new_id("resp")
    )

    async def drain() -> bytes:  # NUL, which JSON text never holds raw, marks each chunk's end
        return b"\x00".join([piece async for piece in events.chunks()])

    return asyncio.run(drain())


def upstream_stream_bytes(stream: str, body: str) -> bytes:
    """The same, from an OpenAI-format upstream stream that sent the chat stream's events."""
    request = {**BODIES[body], "stream": True}
    translation = wire.request_to_chat(request, [])
    events = wire.ResponsesEventStream(
        upstream_stream(STREAMS[stream]), request, translation.tools, wire.new_id("resp")
    )
    return b"\x00".join(run_now(drained(events)))


@pytest.mark.parametrize("answer", sorted(ANSWERS))
@pytest.mark.parametrize("body", sorted(BODIES))
def test_a_translated_answer_is_the_same_bytes_as_before(answer: str, body: str) -> None:
    assert normalised(answer_bytes(answer, body)) == GOLDEN[f"answer/{answer}/{body}"]


@pytest.mark.parametrize("stream", sorted(STREAMS))
@pytest.mark.parametrize("body", sorted(BODIES))
def test_a_translated_stream_is_the_same_bytes_and_chunks_as_before(stream: str, body: str) -> None:
    assert normalised(stream_bytes(stream, body)) == GOLDEN[f"stream/{stream}/{body}"]


@pytest.mark.parametrize("stream", sorted(STREAMS))
@pytest.mark.parametrize("body", sorted(BODIES))
def test_a_stream_from_an_openai_upstream_is_the_same_bytes_and_chunks_as_before(
    stream: str, body: str
) -> None:
    assert normalised(upstream_stream_bytes(stream, body)) == GOLDEN[f"stream/{stream}/{body}"]


@pytest.mark.parametrize("parsed", [False, True])
def test_a_chat_event_that_is_not_json_ends_the_translated_stream(parsed: bool) -> None:
    pieces = [chunk({"content": "a"}), b"data: not json\n\n", openai.DONE]
    request = {**BODIES["plain"], "stream": True}
    inner = upstream_stream(pieces) if parsed else Replay(pieces, None)
    events = wire.ResponsesEventStream(inner, request, wire.Tools(), wire.new_id("resp"))
    with pytest.raises(UpstreamError, match="invalid stream event"):
        run_now(drained(events))


def test_the_ids_in_an_answer_and_a_stream_are_fresh_for_every_request() -> None:
    for made in (lambda: answer_bytes("tools", "full"), lambda: stream_bytes("tools", "full")):
        first, second = ({m.group(0) for m in IDS.finditer(made())} for _ in range(2))
        assert len(first) >= 4 and first.isdisjoint(second)


@pytest.mark.parametrize(
    "event",
    [
        b"data: {}\n\n",
        b"data:x\r\n\n",
        b"data:\n\n",
        b"data: [DONE]\n\n",
        b"data: a\ndata: b\n\n",
        b"event: e\ndata: a\n\n",
        b"data: a\r\n\r\n",
        b": comment\n\n",
    ],
)
def test_an_event_in_one_piece_is_read_as_it_is_byte_by_byte(event: bytes) -> None:
    whole = EventReader(MAX_EVENT_BYTES).feed(event)
    reader = EventReader(MAX_EVENT_BYTES)
    bytewise = [found for i in range(len(event)) for found in reader.feed(event[i : i + 1])]
    assert whole == bytewise and len(whole) == 1
    after = EventReader(MAX_EVENT_BYTES)
    assert after.feed(b"data: par") == [] and after.feed(event) == bytewise_after(event)


def bytewise_after(event: bytes) -> list[Any]:
    """What a reader holding the start of an event makes of ``event`` (read byte by byte)."""
    reader = EventReader(MAX_EVENT_BYTES)
    reader.feed(b"data: par")
    return [found for i in range(len(event)) for found in reader.feed(event[i : i + 1])]


# Bodies whose echoed fields hold the stand-ins the stream's snapshot is cut at (json "\u0000s"
# and so on), in a value and as a key: the snapshot is then written whole, as before.
ECHOING: dict[str, dict[str, Any]] = {
    "instructions": {"model": "m", "input": "hi", "instructions": "\x00s"},
    "quoted": {"model": "m", "input": "hi", "instructions": '"\x00o'},
    "metadata": {"model": "m", "input": "hi", "metadata": {"\x00u": "\x00i"}},
}


@pytest.mark.parametrize("stream", sorted(STREAMS))
@pytest.mark.parametrize("body", sorted(ECHOING) + sorted(BODIES))
def test_every_stream_event_is_json_dumps_of_what_it_carries(stream: str, body: str) -> None:
    """Each event's data is exactly ``json.dumps`` of its own parse, and the final event carries
    the ``completed`` Responses object: the bytes the whole-dict writer made."""
    request = {**(ECHOING.get(body) or BODIES[body]), "stream": True}
    translation = wire.request_to_chat(request, [])
    usage = USAGE if stream == "text" else None
    events = wire.ResponsesEventStream(
        Replay(STREAMS[stream], usage), request, translation.tools, wire.new_id("resp")
    )
    sent = b"".join(run_now(drained(events)))
    found = EventReader(MAX_EVENT_BYTES).feed(sent)
    for event in found:
        assert json.dumps(json.loads(event.data)).encode() == event.data
    final = json.loads(found[-1].data)
    assert final["type"] in ("response.completed", "response.incomplete")
    assert final["response"] == events.completed
    assert [json.loads(e.data)["sequence_number"] for e in found] == list(range(len(found)))
