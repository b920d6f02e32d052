"""The pure parts of issue 12's fixes, property by property: SSE framing gives the same events
however the stream is cut into pieces, and never holds more than the cap of one event; strict
JSON bodies refuse exactly what the rest of the gateway could not hold. (That framing is linear
in time is measured, not asserted: bench/attacks.py, attack ``unframed``.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.api import bodies
from gateway.errors import InvalidRequest
from gateway.wire.sse import Event, EventReader, EventTooLarge

field_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
event = st.tuples(
    st.one_of(st.just(""), field_text.map(lambda t: t.strip())),
    st.lists(field_text, min_size=1, max_size=3),
    st.sampled_from(["\n", "\r\n"]),
)


def encode(events: list[tuple[str, list[str], str]]) -> bytes:
    out = []
    for name, data, newline in events:
        lines = ([f"event: {name}"] if name else []) + [f"data: {d}" for d in data]
        out.append(newline.join(lines) + newline + newline)
    return "".join(out).encode()


def read(stream: bytes, cuts: list[int], cap: int = 1 << 20) -> list[Event]:
    reader = EventReader(cap)
    found: list[Event] = []
    start = 0
    for cut in [*sorted(cuts), len(stream)]:
        found += reader.feed(stream[start:cut])
        start = cut
    return found + reader.finish()


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(event, min_size=1, max_size=8), st.lists(st.integers(0, 2000), max_size=12))
def test_events_are_the_same_however_the_stream_is_cut(
    events: list[tuple[str, list[str], str]], cuts: list[int]
) -> None:
    stream = encode(events)
    cuts = [c % (len(stream) + 1) for c in cuts]
    whole = read(stream, [])
    assert read(stream, cuts) == whole
    assert [(e.name.decode(), e.data.decode()) for e in whole] == [
        (name, "\n".join(d.strip() for d in data)) for name, data, _ in events
    ]
    assert b"".join(e.raw for e in whole) == stream


@settings(max_examples=100, deadline=None, database=None)
@given(st.integers(1, 70_000), st.sampled_from([b"data: x\n", b"y", b"\r"]))
def test_an_event_past_the_cap_is_refused_whatever_the_pieces(piece: int, filler: bytes) -> None:
    stream = filler * (200_000 // len(filler))
    with pytest.raises(EventTooLarge):
        feed_in_pieces(EventReader(64 * 1024), stream, piece)


def feed_in_pieces(reader: EventReader, stream: bytes, piece: int) -> None:
    for start in range(0, len(stream), piece):
        reader.feed(stream[start : start + piece])


def test_a_stream_that_ends_without_its_blank_line_still_gives_its_last_event() -> None:
    reader = EventReader(1024)
    assert reader.feed(b"data: [DONE]") == []
    assert reader.finish() == [Event(b"data: [DONE]", b"", b"[DONE]")]


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 65 + b"]" * 65,
        b'{"a": ' * 2000 + b"1" + b"}" * 2000,
        b'"\\ud800"',
        b'{"k\\udfff": 1}',
        b'"\xed\xa0\x80"',
        b"\xff",
        b"NaN",
        b"[Infinity]",
        b"1e400",
        b"9223372036854775808",
        b"-9223372036854775809",
        b"9" * 4301,
        "{}".encode("utf-16"),
    ],
)
def test_a_body_beyond_strict_json_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        bodies.parse(body)


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (b"[" * 64 + b"]" * 64, json.loads(b"[" * 64 + b"]" * 64)),
        (b'"\\ud83d\\ude00"', "\U0001f600"),
        (b'"[[[[ {{{{ \\\\ud800"', "[[[[ {{{{ \\ud800"),
        (b"9223372036854775807", 2**63 - 1),
        (b"-9223372036854775808", -(2**63)),
        (b'"12345678901234567890123"', "12345678901234567890123"),
        (b"1e308", 1e308),
    ],
)
def test_a_body_within_strict_json_is_read_as_json(body: bytes, value: Any) -> None:
    assert bodies.parse(body) == value
