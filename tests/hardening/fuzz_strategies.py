"""Hypothesis strategies for request bodies: shaped like each route's body, with any field at
any moment replaced by any JSON value, plus raw bytes that are not JSON the way a parser expects
(nesting thousands deep, lone surrogates, numbers out of range, other encodings).

The field names are written out here rather than imported from the gateway: the fuzz suite
drives the gateway over HTTP and holds its own idea of what each route takes.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

MODELS = ["mock-gpt", "fake-gpt", "fake-claude", "no-such-model"]

# Strings that broke parsers, renderers and databases somewhere.
NASTY = [
    "",
    "\ud800",
    "a\udfffb",
    "\ud83d",
    "\x00",
    "\u202e\u0000",
    "\U0001f600",
    "%s%n%x",
    "{0}{1}",
    "${jndi:ldap://x}",
    "'; DROP TABLE spend; --",
    "../../etc/passwd",
    "http://169.254.169.254/latest/meta-data/",
    "openai/http://127.0.0.1:1/",
    "\r\nX-Injected: 1",
    "a" * 5000,
]
text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(NASTY),
    st.text(st.characters(categories=["Cs", "Cc", "Zs", "Lo"]), max_size=8),
)
ONE_IN_TEN = st.sampled_from([False] * 9 + [True])
ONE_IN_TWELVE = st.sampled_from([False] * 11 + [True])
BIG = [2**31, 2**53 + 1, 2**63, -(2**63) - 1, 10**4299 - 1, -(10**4299) + 1]


def mostly(usual: st.SearchStrategy[Any], *rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` three times in four, else one of ``rare``."""
    return st.sampled_from([True, True, True, False]).flatmap(
        lambda common: usual if common else st.one_of(*rare)
    )


integers = mostly(st.integers(1, 64), st.integers(), st.sampled_from(BIG))
numbers = mostly(st.floats(0, 2), integers, st.floats())  # NaN and infinities among them
scalars = st.one_of(st.none(), st.booleans(), numbers, text)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually ``strategy``; now and then (one time in twelve) any JSON value at all: rare
    enough that most bodies get past the first wrong field and into the code behind it."""
    return ONE_IN_TWELVE.flatmap(lambda wild: json_values if wild else strategy)


STEERING_OR_UNKNOWN = st.sampled_from(
    ["api_base", "base_url", "api_key", "extra_headers", "colour"]
)


@st.composite
def _body(
    draw: st.DrawFn,
    required: dict[str, st.SearchStrategy[Any]],
    optional: dict[str, st.SearchStrategy[Any]],
) -> dict[str, Any]:
    out = {name: draw(maybe(value)) for name, value in required.items()}
    if required and draw(ONE_IN_TEN):
        del out[draw(st.sampled_from(sorted(required)))]
    chosen = draw(st.sets(st.sampled_from(sorted(optional)), max_size=3)) if optional else set()
    for name in sorted(chosen):  # sorted: the same draws under any hash seed
        out[name] = draw(maybe(optional[name]))
    if draw(ONE_IN_TEN):
        out[draw(STEERING_OR_UNKNOWN | text)] = draw(json_values)
    return out


def body(
    required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    """An object with the required fields (one of them left out one time in ten), up to three
    of the optional ones, and one time in ten a field nobody knows or one that would steer the
    upstream. Any value is any JSON value now and then (``maybe``)."""
    return _body(required, optional)


# -- /v1/chat/completions -------------------------------------------------------------------
URLS = ["https://example.com/a.png", "data:image/png;base64,AAAA", "data:,x", "file:///etc/x"]
content_part = body(
    {"type": st.sampled_from(["text", "image_url", "input_audio", "refusal", "file"])},
    {
        "text": text,
        "image_url": body({"url": st.sampled_from(URLS) | text}, {"detail": text}),
        "refusal": text,
    },
)
content = st.one_of(st.none(), text, st.lists(maybe(content_part), max_size=3))
tool_call = body(
    {
        "id": text,
        "type": st.just("function"),
        "function": body(
            {"name": text, "arguments": st.sampled_from(["{}", '{"a": 1}', "not json", "[]"])},
            {},
        ),
    },
    {},
)
message = body(
    {
        "role": st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"]),
        "content": content,
    },
    {"tool_calls": st.lists(maybe(tool_call), max_size=2), "tool_call_id": text, "name": text},
)
tool = body(
    {
        "type": st.just("function"),
        "function": body({"name": text}, {"description": text, "parameters": json_values}),
    },
    {},
)
chat = body(
    {
        "model": st.sampled_from(MODELS),
        "messages": st.lists(maybe(message), min_size=1, max_size=4),
    },
    {
        "stream": st.booleans(),
        "stream_options": body({}, {"include_usage": st.booleans()}),
        "max_tokens": integers,
        "max_completion_tokens": integers,
        "n": integers,
        "temperature": numbers,
        "top_p": numbers,
        "presence_penalty": numbers,
        "frequency_penalty": numbers,
        "stop": text | st.lists(text, max_size=5),
        "tools": st.lists(maybe(tool), max_size=3),
        "tool_choice": st.sampled_from(["auto", "none", "required"])
        | body({"type": st.just("function"), "function": body({"name": text}, {})}, {}),
        "parallel_tool_calls": st.booleans(),
        "response_format": body({"type": st.sampled_from(["text", "json_object"])}, {}),
        "user": text,
        "seed": integers,
        "logit_bias": st.dictionaries(text, numbers, max_size=3),
        "logprobs": st.booleans(),
        "top_logprobs": integers,
        "metadata": st.dictionaries(text, text, max_size=3),
        "reasoning_effort": st.sampled_from(["low", "medium", "high"]),
    },
)

# -- /v1/embeddings -------------------------------------------------------------------------
embeddings = body(
    {
        "model": st.sampled_from(MODELS),
        "input": st.one_of(
            text,
            st.lists(text, max_size=4),
            st.lists(integers, max_size=4),
            st.lists(st.lists(integers, max_size=3), max_size=3),
        ),
    },
    {"encoding_format": st.sampled_from(["float", "base64"]), "dimensions": integers, "user": text},
)

# -- /v1/messages ---------------------------------------------------------------------------
source = st.one_of(
    body(
        {
            "type": st.just("base64"),
            "media_type": st.sampled_from(["image/png", "text/plain"]),
            "data": text,
        },
        {},
    ),
    body({"type": st.just("url"), "url": st.sampled_from(URLS) | text}, {}),
)
block = st.one_of(
    body({"type": st.just("text"), "text": text}, {}),
    body({"type": st.just("image"), "source": source}, {}),
    body({"type": st.just("tool_use"), "id": text, "name": text, "input": json_values}, {}),
    body(
        {
            "type": st.just("tool_result"),
            "tool_use_id": text,
            "content": text | st.lists(maybe(body({"type": st.just("text"), "text": text}, {}))),
        },
        {"is_error": st.booleans()},
    ),
    body({"type": text}, {}),
)
anthropic_message = body(
    {
        "role": st.sampled_from(["user", "assistant", "user", "assistant", "system"]),
        "content": text | st.lists(maybe(block), max_size=3),
    },
    {},
)
messages = body(
    {
        "model": st.sampled_from(MODELS),
        "max_tokens": integers,
        "messages": st.lists(maybe(anthropic_message), min_size=1, max_size=4),
    },
    {
        "system": text | st.lists(maybe(body({"type": st.just("text"), "text": text}, {}))),
        "stop_sequences": st.lists(text, max_size=3),
        "temperature": numbers,
        "top_p": numbers,
        "tools": st.lists(
            maybe(body({"name": text}, {"description": text, "input_schema": json_values})),
            max_size=3,
        ),
        "tool_choice": body(
            {"type": st.sampled_from(["auto", "any", "tool", "none"])},
            {"name": text, "disable_parallel_tool_use": st.booleans()},
        ),
        "metadata": body({}, {"user_id": text}),
        "stream": st.booleans(),
    },
)

# -- admin bodies: every admin field, so each route gets its own and others' ------------------
USD = ["1", "0.000000001", "1e9", "-1", "NaN", "Infinity", "1e-30", "0", "1000000001"]
DATES = ["2030-01-01T00:00:00Z", "2030-01-01", "1970-01-01T00:00:00Z", "2030-02-30T00:00:00Z"]
admin_body = body(
    {},
    {
        "models": st.lists(st.sampled_from([*MODELS, "*"]) | text, max_size=3),
        "expires_at": st.sampled_from(DATES) | text,
        "metadata": st.dictionaries(text, json_values, max_size=3),
        "team_id": text,
        "user_id": text,
        "rpm_limit": integers,
        "tpm_limit": integers,
        "name": text,
        "role": st.sampled_from(["team_admin", "viewer", "admin"]),
        "scope": st.sampled_from(["key", "team", "user"]),
        "scope_id": text,
        "period": st.sampled_from(["daily", "weekly", "monthly", "total", "hourly"]),
        "max_usd": st.sampled_from(USD) | numbers,
        "soft_usd": st.sampled_from(USD) | numbers,
    },
)


# -- raw bytes ------------------------------------------------------------------------------
@st.composite
def raw_bodies(draw: st.DrawFn, model: str = "mock-gpt") -> bytes:
    """Bytes a JSON parser meets at the edge of what it handles."""
    kind = draw(st.sampled_from(["deep", "deep_in", "numbers", "encoding", "junk", "escape"]))
    if kind == "deep":
        depth = draw(st.integers(500, 120_000))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        return opener * depth + b"1" + closer * depth
    if kind == "deep_in":
        depth = draw(st.integers(500, 60_000))
        field = draw(st.sampled_from([b"messages", b"input", b"metadata", b"tools", b"models"]))
        head = b'{"model": "%s", "max_tokens": 5, "%s": ' % (model.encode(), field)
        return head + b"[" * depth + b"]" * depth + b"}"
    if kind == "numbers":
        number = draw(
            st.sampled_from(
                [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-0", b"1" * 4301, b"9" * 4299]
            )
        )
        field = draw(st.sampled_from([b"max_tokens", b"n", b"temperature", b"seed", b"dimensions"]))
        return b'{"model": "%s", "%s": %s, "messages": [], "input": "x"}' % (
            model.encode(),
            field,
            number,
        )
    if kind == "encoding":
        document = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
        codec = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "utf-8-sig", "latin-1"]))
        return document.encode(codec)
    if kind == "escape":
        escape = draw(st.sampled_from([b"\\ud800", b"\\udfff", b"\\ud83d\\u0041", b"\xed\xa0\x80"]))
        return (
            b'{"model": "%s", "max_tokens": 5, "input": "%s", '
            b'"messages": [{"role": "user", "content": "%s"}]}' % (model.encode(), escape, escape)
        )
    return draw(st.binary(max_size=300))


# -- what an upstream answers ---------------------------------------------------------------------
def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


completion = body(
    {
        "id": text,
        "object": st.just("chat.completion"),
        "choices": st.lists(
            maybe(
                body(
                    {
                        "index": integers,
                        "message": body(
                            {"role": st.just("assistant"), "content": text | st.none()},
                            {"tool_calls": st.lists(maybe(tool_call), max_size=2)},
                        ),
                        "finish_reason": st.sampled_from(["stop", "length", "tool_calls"]),
                    },
                    {},
                )
            ),
            max_size=2,
        ),
    },
    {"usage": body({"prompt_tokens": integers, "completion_tokens": integers}, {})},
)
anthropic_answer = body(
    {
        "id": text,
        "type": st.just("message"),
        "content": st.lists(maybe(block), max_size=3),
        "stop_reason": st.sampled_from(["end_turn", "tool_use", "max_tokens"]),
    },
    {"usage": body({"input_tokens": integers, "output_tokens": integers}, {})},
)
chunk = body(
    {
        "id": text,
        "choices": st.lists(
            maybe(body({"index": integers, "delta": body({}, {"content": text})}, {})),
            max_size=2,
        ),
    },
    {"usage": body({"prompt_tokens": integers}, {}), "error": body({"message": text}, {})},
)
anthropic_event = body(
    {
        "type": st.sampled_from(
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "message_delta",
                "message_stop",
                "error",
                "ping",
            ]
        )
    },
    {
        "message": body({"id": text}, {"usage": json_values}),
        "content_block": maybe(block),
        "delta": body({"type": st.sampled_from(["text_delta", "input_json_delta"])}, {}),
        "index": integers,
        "usage": json_values,
        "error": body({"type": text, "message": text}, {}),
    },
)


@st.composite
def upstream_answers(draw: st.DrawFn, anthropic: bool) -> bytes:
    """A 200 body an upstream of that format might send: an answer, a stream of events, or
    bytes that are neither."""
    kind = draw(st.sampled_from(["answer", "stream", "junk"]))
    if kind == "answer":
        return _json(draw(anthropic_answer if anthropic else completion))
    if kind == "stream":
        shaped = anthropic_event if anthropic else chunk
        # one event in four any JSON at all: an upstream's events are where translators break
        one = st.sampled_from([False, False, False, True]).flatmap(
            lambda wild: json_values if wild else shaped
        )
        events = draw(st.lists(one, max_size=6))
        name = b"event: x\n" if anthropic else b""
        parts = [name + b"data: " + _json(e) + b"\n\n" for e in events]
        return b"".join(parts) + (b"" if anthropic else b"data: [DONE]\n\n")
    return draw(st.binary(max_size=200))


# -- /v1/responses and /v1/completions (issue 14) ------------------------------------------------
response_part = body(
    {
        "type": st.sampled_from(
            ["input_text", "output_text", "input_image", "refusal", "input_file"]
        )
    },
    {"text": text, "image_url": st.sampled_from(URLS) | text, "detail": text, "refusal": text},
)
response_item = st.one_of(
    body(
        {
            "role": st.sampled_from(["user", "assistant", "system", "developer", "tool"]),
            "content": st.one_of(text, st.lists(maybe(response_part), max_size=3)),
        },
        {"type": st.just("message")},
    ),
    body(
        {
            "type": st.sampled_from(
                ["function_call", "custom_tool_call", "function_call_output", "reasoning"]
            ),
            "call_id": text,
        },
        {"name": text, "arguments": text, "input": text, "output": text, "namespace": text},
    ),
)
response_tool = body(
    {"type": st.sampled_from(["function", "namespace", "custom", "web_search", "file_search"])},
    {
        "name": text,
        "parameters": json_values,
        "tools": st.lists(json_values, max_size=2),
        "description": text,
    },
)
responses = body(
    {
        "model": st.sampled_from(MODELS),
        "input": st.one_of(text, st.lists(maybe(response_item), max_size=4)),
    },
    {
        "instructions": text,
        "tools": st.lists(maybe(response_tool), max_size=3),
        "tool_choice": st.sampled_from(["auto", "none", "required"])
        | body({"type": st.sampled_from(["function", "custom", "allowed_tools"])}, {"name": text}),
        "text": body(
            {},
            {
                "format": body(
                    {"type": st.sampled_from(["text", "json_object", "json_schema", "grammar"])},
                    {"name": text, "schema": json_values, "strict": st.booleans()},
                )
            },
        ),
        "reasoning": body({}, {"effort": text, "summary": text}),
        "max_output_tokens": integers,
        "previous_response_id": text,
        "store": st.booleans(),
        "stream": st.booleans(),
        "temperature": numbers,
        "include": st.lists(text, max_size=2),
        "background": st.booleans(),
        "metadata": st.dictionaries(text, text, max_size=2),
    },
)
completions = body(
    {"model": st.sampled_from(MODELS), "prompt": st.one_of(text, st.lists(text, max_size=2))},
    {
        "max_tokens": integers,
        "stream": st.booleans(),
        "echo": st.booleans(),
        "suffix": text,
        "logprobs": integers,
        "best_of": integers,
        "n": integers,
        "stop": text,
    },
)
