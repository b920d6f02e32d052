"""The exact bytes ``/v1/messages`` streams to an Anthropic client from an OpenAI-format
deployment: the internal chat stream re-emitted as Anthropic events, chunk by chunk. Pinned
against ``data/messages_bytes.json`` (written from the translation before it was made faster,
issue 14's performance item) so that an optimisation cannot change a byte. Each stream is made
twice: from the chat stream's bytes (what a translated upstream, a guardrail or any other
wrapper hands on) and from an OpenAI-format upstream stream, which hands its chunks over
already parsed; both must be the pinned bytes. No network."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.governance.streams import CountingStream
from gateway.providers.openai import OpenAIUpstreamStream
from gateway.routing.stats import Stats, TimedStream
from gateway.tracing import FinishReasons
from gateway.values import Usage
from gateway.wire import openai
from gateway.wire.anthropic.streams import AnthropicEventStream
from tests.support.replayed import drained, run_now, upstream_stream

GOLDEN: dict[str, str] = json.loads(
    (Path(__file__).parent / "data" / "messages_bytes.json").read_text()
)
USAGE = Usage(30, 12, 4)


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return openai.chunk("chatcmpl-abc", 1, "m", delta, finish)


def call_delta(index: int, **fields: Any) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, **fields}]}


STREAMS: dict[str, list[bytes]] = {
    "text": [
        chunk({"role": "assistant", "content": ""}),
        *[chunk({"content": f'word{i} \u00e9"\n\u2603'}) for i in range(20)],
        chunk({}, "stop"),
        openai.usage_chunk("chatcmpl-abc", 1, "m", USAGE),
        openai.DONE,
    ],
    "tools": [
        chunk({"role": "assistant", "content": "Let me."}),
        chunk(call_delta(0, id="call_a", function={"name": "get_weather", "arguments": ""})),
        chunk(call_delta(0, function={"arguments": '{"city"'})),
        chunk(call_delta(0, function={"arguments": ': "Paris"}'})),
        chunk(call_delta(1, id="call_b", function={"name": "lookup", "arguments": "{}"})),
        chunk({}, "tool_calls"),
        openai.DONE,
    ],
    "length": [chunk({"content": "cut"}), chunk({}, "length"), openai.DONE],
    "empty": [openai.DONE],
    # what the translation skips: an event that is not JSON, one that is not an object, a
    # comment, an empty data line
    "skipped": [
        b"data: not json\n\n",
        chunk({"content": "a"}),
        b"data: [1, 2]\n\n",
        b": keep-alive\n\n",
        b"data:\n\n",
        chunk({}, "stop"),
        openai.DONE,
    ],
}


class Replay:
    """The chat stream as bytes, a chunk for each piece (no parsed chunks on offer)."""

    def __init__(self, pieces: list[bytes], usage: Usage | None) -> None:
        self.pieces = pieces
        self.usage = usage

    async def chunks(self) -> Any:
        for piece in self.pieces:
            yield piece

    async def aclose(self) -> None:
        return None


def from_bytes(name: str) -> bytes:
    events = AnthropicEventStream(Replay(STREAMS[name], None), "m", 11)
    return b"\x00".join(run_now(drained(events)))  # NUL marks each chunk's end


def from_upstream(name: str) -> bytes:
    events = AnthropicEventStream(upstream_stream(STREAMS[name]), "m", 11)
    return b"\x00".join(run_now(drained(events)))


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_a_stream_from_chat_bytes_is_the_same_bytes_and_chunks_as_before(name: str) -> None:
    assert from_bytes(name).decode() == GOLDEN[name]


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_a_stream_from_an_openai_upstream_is_the_same_bytes_and_chunks_as_before(
    name: str,
) -> None:
    assert from_upstream(name).decode() == GOLDEN[name]


def test_the_usage_of_an_openai_upstream_reaches_the_client_and_the_stream() -> None:
    events = AnthropicEventStream(upstream_stream(STREAMS["text"]), "m", 11)
    sent = b"".join(run_now(drained(events)))
    delta = json.loads(sent.split(b"event: message_delta\ndata: ", 1)[1].split(b"\n", 1)[0])
    assert delta["usage"] == {
        "input_tokens": 26,
        "cache_read_input_tokens": 4,
        "output_tokens": 12,
    }
    assert events.usage == USAGE


def test_a_translator_reads_an_openai_upstreams_chunks_parsed_through_the_wrappers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the router's and governance's wrappers, the translation takes the chunks the
    upstream stream parsed, and never frames its bytes again: its ``chunks()`` is not read."""

    def unread(self: OpenAIUpstreamStream) -> Any:
        raise AssertionError("the upstream's bytes were read")

    monkeypatch.setattr(OpenAIUpstreamStream, "chunks", unread)
    stats = Stats()
    stats.in_flight = 1
    counting = CountingStream(TimedStream(upstream_stream(STREAMS["tools"]), stats, 0.0, lambda: 0))
    events = AnthropicEventStream(counting, "m", 11)
    assert b"\x00".join(run_now(drained(events))).decode() == GOLDEN["tools"]
    assert stats.total is not None  # the timed stream saw its end


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_parsed_chunks_are_counted_as_their_bytes_are(name: str) -> None:
    """Governance's fallback count (one token per delta) is the same from the parsed chunks as
    from the bytes."""
    from_bytes_count = CountingStream(Replay(STREAMS[name], None))
    run_now(drained(from_bytes_count))
    parsed = CountingStream(upstream_stream(STREAMS[name]))
    run_now(drained(AnthropicEventStream(parsed, "m", 11)))
    assert parsed.counted == from_bytes_count.counted


DATA = [
    b'{"a": 1}',
    b' {"a": 1}',
    b'{"a": 1} x',
    b"1 2",
    b"[1, 2]",
    b"null",
    b'"s"',
    b"NaN",
    b"",
    b"not json",
    b'\xef\xbb\xbf{"a": 1}',
    '{"a": "\u00e9"}'.encode("utf-16"),
    b'{"a": "\xff"}',
    b"[" * 100_000,
]


@pytest.mark.parametrize("data", DATA)
def test_an_events_data_parses_as_json_loads_parses_it(data: bytes) -> None:
    try:
        expected = json.loads(data)
    except (ValueError, RecursionError):
        expected = None
    assert repr(openai.parse(data)) == repr(expected)


@pytest.mark.parametrize("data", DATA)
def test_loads_gives_what_json_loads_gives_its_value_or_its_error(data: bytes) -> None:
    try:
        expected: object = json.loads(data)
    except (ValueError, RecursionError) as exc:
        expected = type(exc)
    try:
        got: object = openai.loads(data)
    except (ValueError, RecursionError) as exc:
        got = type(exc)
    assert repr(got) == repr(expected)


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_the_traced_finish_reasons_are_the_same_from_parsed_chunks(name: str) -> None:
    spans = [SimpleNamespace(attributes={}) for _ in range(2)]
    run_now(drained(FinishReasons(Replay(STREAMS[name], None), spans[0])))  # type: ignore[arg-type]
    parsed = FinishReasons(upstream_stream(STREAMS[name]), spans[1])  # type: ignore[arg-type]
    run_now(drained(AnthropicEventStream(parsed, "m", 11)))
    assert spans[1].attributes == spans[0].attributes
    assert spans[0].attributes or name == "empty"
