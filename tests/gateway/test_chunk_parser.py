"""``wire.openai.ChunkParser`` (issue 14's performance item) makes of every event exactly what
``wire.openai.parse`` (``json.loads``) makes of it: once it learned a stream's text deltas, for
events that fit the template (any text: escapes, non-ASCII, astral, empty) and for the ones that
only look as if they do (a second value after the string, a string that is not one, bad UTF-8,
another prefix, duplicate keys); and it learns only from two deltas whose only difference is
their ``content`` string."""

from __future__ import annotations

import json

import pytest

from gateway.wire import openai

HEAD = b'{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", '
FIRST = HEAD + b'"choices": [{"index": 0, "delta": {"content": "word"}, "finish_reason": null}]}'
COMPACT = (  # as vLLM writes it
    b'{"id":"c","choices":[{"index":0,"delta":{"content":"word"},"logprobs":null,'
    b'"finish_reason":null}]}'
)
TOKENS = [
    b'"hello"',
    b'""',
    b'"say \\"hi\\"\\n\\t\\\\"',
    '"naïve 日本語 🙂"'.encode(),
    b'"\\ud83d\\ude42 \\u00e9 \\/"',
    b'"\\ud800"',  # a lone surrogate, as json.loads keeps it
    b'"a", "content": "b"',  # a second key after the string: not one string
    b'"a" "b"',
    b'"a',
    b'"a\x01b"',  # a raw control character: json.loads refuses it
    b'"\xff\xfe"',  # not UTF-8
    b"12",
    b"null",
    b'["a"]',
    b'"x"}, {"index": 1, "delta": {"content": "y"',
    b'"a" ',
]
OTHERS = [
    FIRST.replace(b'"c"', b'"d"'),
    FIRST.replace(b'"word"}', b'"word", "role": "assistant"}'),
    HEAD + b'"choices": [], "usage": {"prompt_tokens": 1}}',
    b"[DONE]",
    b"not json",
]


def learned(first: bytes) -> openai.ChunkParser:
    parser = openai.ChunkParser()
    parser.parse(first)
    parser.parse(first.replace(b'"word"', b'"other"'))
    return parser


@pytest.mark.parametrize("first", [FIRST, COMPACT, b" " + FIRST])
def test_every_event_parses_as_json_loads_does_once_a_template_is_learned(first: bytes) -> None:
    parser = learned(first)
    assert parser._head == first[: first.index(b'"word"')]  # learned
    events = [first.replace(b'"word"', token) for token in TOKENS] + OTHERS
    events += [first.replace(b'"word"', b'"%d"' % i) for i in range(5)]
    for data in events:
        got, want = parser.parse(data), openai.parse(data)
        assert got == want and json.dumps(got) == json.dumps(want), data


def test_a_learned_template_makes_a_fresh_chunk_for_each_event() -> None:
    parser = learned(FIRST)
    one, two = (parser.parse(FIRST.replace(b'"word"', b'"%d"' % i)) for i in (1, 2))
    assert one["choices"][0]["delta"] == {"content": "1"}
    assert one["choices"] is not two["choices"] and one is not two


@pytest.mark.parametrize(
    "first",
    [
        FIRST.replace(b'"word"', b'"same"'),  # the same text twice: nothing shows which it is
        HEAD + b'"choices": [{"index": 0, "delta": {"content": "word"}, "content": "q"}]}',
        HEAD + b'"choices": [{"index": 0, "delta": {"content": "word"}, "x": [1]}]}',
        HEAD + b'"choices": [{"index": 0, "delta": {"content": "word"}}], "usage": null}',
        HEAD + b'"choices": [{"index": 0, "delta": {"content": "word"}}], "c": {"content": 1}}',
    ],
)
def test_nothing_is_learned_where_the_string_may_not_be_the_delta_content(first: bytes) -> None:
    parser = openai.ChunkParser()
    for data in [first, first.replace(b'"word"', b'"other"')]:
        assert parser.parse(data) == openai.parse(data)
    assert parser._head == b""


def test_the_last_of_duplicate_content_keys_is_the_template_as_json_loads_keeps_it() -> None:
    first = HEAD + b'"choices": [{"index": 0, "delta": {"content": "a", "content": "word"}}]}'
    parser = learned(first)
    assert parser._head
    for token in TOKENS:
        data = first.replace(b'"word"', token)
        assert parser.parse(data) == openai.parse(data)
