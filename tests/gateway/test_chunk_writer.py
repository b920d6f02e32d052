"""The translators' chunks written from a template (``wire.openai.ChunkWriter``) are byte for
byte what ``wire.openai.chunk`` writes: for every kind of text (quotes, escapes, control
characters, non-ASCII, astral characters), for deltas that are not a lone text (the role chunk,
tool calls, an empty delta), with a finish reason, and after the stream's id changes (set from
the upstream's first event)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.wire import openai

TEXTS = [
    "",
    "Hello",
    'say "hi"\n\tand \\ back',
    "\x00",  # the template's stand-in, as text of its own
    "\x00\x01\x1f\x7f",
    "naïve café 日本語 עברית",
    "emoji 🙂 and 𝄞",
    "</script>\u2028\u2029",
    "x" * 10_000,
]


class Writer(openai.ChunkWriter):
    def __init__(self, completion_id: str, model: str) -> None:
        self.id = completion_id
        self.created = 1_764_000_000
        self.model = model


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("model", ["claude", 'a "model"', "\x00", "模型"])
def test_a_text_delta_from_the_template_is_the_chunk_byte_for_byte(text: str, model: str) -> None:
    writer = Writer("chatcmpl-1", model)
    for _ in range(2):  # made, then reused
        assert writer._chunk({"content": text}) == openai.chunk(
            "chatcmpl-1", 1_764_000_000, model, {"content": text}
        )


@pytest.mark.parametrize(
    ("delta", "finish"),
    [
        ({"role": "assistant", "content": ""}, None),
        ({"content": "done"}, "stop"),
        ({}, "length"),
        ({}, None),
        ({"content": None}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}, None),
        ({"tool_calls": [{"index": 1, "id": "c\u00e9", "type": "function"}]}, "tool_calls"),
        ({"content": "a", "refusal": None}, None),
    ],
)
@pytest.mark.parametrize("model", ["m", 'a "model"', "模型"])
def test_every_other_chunk_from_the_template_is_the_chunk_byte_for_byte(
    delta: dict[str, Any], finish: str | None, model: str
) -> None:
    writer = Writer("chatcmpl-2", model)
    for _ in range(2):  # made, then reused
        assert writer._chunk(delta, finish) == openai.chunk(
            "chatcmpl-2", 1_764_000_000, model, delta, finish
        )


def test_the_template_follows_the_id_when_the_upstream_names_it() -> None:
    writer = Writer("chatcmpl-", "m")
    assert b'"chatcmpl-"' in writer._chunk({"content": "a"})
    writer.id = "chatcmpl-msg_01"
    assert writer._chunk({"content": "b"}) == openai.chunk(
        "chatcmpl-msg_01", 1_764_000_000, "m", {"content": "b"}
    )
