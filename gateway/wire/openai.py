"""The OpenAI wire format: the gateway's internal shape and its main public API.

Ingress (``/v1/chat/completions``, ``/v1/embeddings``) passes OpenAI bodies through; every other
format is translated to and from this one (``gateway.wire.anthropic``). What is written here is
what every direction shares: reading ``usage``, writing ``usage``, and the ``chat.completion.chunk``
server-sent events that translated streams emit. Pure functions, no I/O.
"""

from __future__ import annotations

import json
import json.scanner
from collections.abc import AsyncIterator
from typing import Any

from gateway.values import END, Stream, Usage, parsed_chunks
from gateway.wire.sse import EventReader

DONE = b"data: [DONE]\n\n"
DONE_DATA = b"[DONE]"

# The error codes OpenAI's API reference and OpenAI-compatible servers document (``error.code``,
# and the ``error.type`` values). An upstream's code is passed on only when it is one of these.
ERROR_CODES = frozenset(
    {
        "invalid_request_error",
        "invalid_api_key",
        "insufficient_quota",
        "rate_limit_exceeded",
        "server_error",
        "context_length_exceeded",
        "model_not_found",
        "content_filter",
        "content_policy_violation",
        "invalid_prompt",
        "invalid_value",
        "invalid_type",
        "invalid_image",
        "invalid_image_format",
        "invalid_image_url",
        "image_too_large",
        "missing_required_parameter",
        "unknown_parameter",
        "unsupported_parameter",
        "unsupported_value",
        "string_above_max_length",
        "string_below_min_length",
        "array_above_max_length",
        "array_below_min_length",
        "empty_array",
        "integer_above_max_value",
        "integer_below_min_value",
        "decimal_above_max_value",
        "decimal_below_min_value",
        "tool_use_failed",
        "json_validate_failed",
        "DeploymentNotFound",
        "OperationNotSupported",
    }
)


# The most tokens one answer may report: a count beyond it is not believed (an upstream's number
# is multiplied by prices and added into counters, which must stay within 64 bits).
MAX_REPORTED_TOKENS = 2**32


def count_of(value: Any) -> int:
    """A token count an upstream reported: a non-negative integer, at most
    ``MAX_REPORTED_TOKENS``; anything else counts as 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return min(value, MAX_REPORTED_TOKENS)


def usage_from(usage: Any) -> Usage | None:
    """An OpenAI ``usage`` object as Usage (None when there is none)."""
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens", 0) if isinstance(details, dict) else 0
    return Usage(
        prompt_tokens=count_of(usage.get("prompt_tokens")),
        completion_tokens=count_of(usage.get("completion_tokens")),
        cached_tokens=count_of(cached),
    )


def usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def event(data: dict[str, Any]) -> bytes:
    """One server-sent event carrying ``data`` as JSON."""
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def chunk(
    completion_id: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    finish: str | None = None,
) -> bytes:
    """A ``chat.completion.chunk`` event with one choice."""
    return event(
        {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


_NO_FINISH = b', "finish_reason": null}]}\n\n'  # how a chunk without a finish reason ends
_EMPTY_TAIL = b"{}" + _NO_FINISH  # how a chunk of an empty delta ends


class ChunkWriter:
    """What every translator to OpenAI chunks (Anthropic, Bedrock, Cohere, Gemini) writes with:
    its stream's ``id``, ``created`` and ``model``, and ``_chunk``. Every chunk is written from a
    template of its stream's own chunk: the head (``data:``, id, object, created, model, up to
    the delta) is serialised once, then each chunk serialises only its delta (a text delta, most
    of a stream's chunks: only its text) and its finish reason; the bytes are exactly
    ``chunk``'s (``json.dumps`` of a nested object is its parts' serialisations joined). The
    template is made again when the id changes (it is set from the upstream's first event).

    A stream that hands its chunks over parsed (``values.parsed_chunks``) sets ``parsed``: each
    chunk is then written as what ``json.loads`` makes of those bytes (a fresh dict; ``END`` for
    ``[DONE]``), for a translator to another wire format to read without parsing them again."""

    id: str
    created: int
    model: str
    parsed = False
    _template: tuple[str, int, str, bytes] | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> Any:
        """``chunk``'s bytes, or (``parsed``) their parse."""
        if self.parsed:
            return self._parsed(choices=[{"index": 0, "delta": delta, "finish_reason": finish}])
        template = self._template
        if template is None or template[:3] != (self.id, self.created, self.model):
            head = chunk(self.id, self.created, self.model, {})[: -len(_EMPTY_TAIL)]
            template = self._template = (self.id, self.created, self.model, head)
        if finish is not None:
            tail = b', "finish_reason": ' + json.dumps(finish).encode() + b"}]}\n\n"
            return template[3] + json.dumps(delta).encode() + tail
        text = delta.get("content")
        if len(delta) == 1 and type(text) is str:
            return template[3] + b'{"content": ' + json.dumps(text).encode() + b"}" + _NO_FINISH
        return template[3] + json.dumps(delta).encode() + _NO_FINISH

    def _usage_chunk(self, usage: Usage) -> Any:
        """``usage_chunk``'s bytes, or (``parsed``) their parse."""
        if self.parsed:
            return self._parsed(choices=[], usage=usage_json(usage))
        return usage_chunk(self.id, self.created, self.model, usage)

    def _parsed(self, **rest: Any) -> dict[str, Any]:
        """A chunk as ``json.loads`` makes it of the bytes ``chunk`` writes: the stream's head,
        then ``rest`` in order."""
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            **rest,
        }

    def _end(self) -> Any:
        """``data: [DONE]``, or (``parsed``) ``END``."""
        return END if self.parsed else DONE


def usage_chunk(completion_id: str, created: int, model: str, usage: Usage) -> bytes:
    """The final chunk of a stream with ``stream_options.include_usage``: no choices, usage."""
    return event(
        {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage_json(usage),
        }
    )


def stream_error(payload: Any) -> Any:
    """The ``error`` of an OpenAI-format stream event that reports one (None otherwise)."""
    return payload.get("error") if isinstance(payload, dict) else None


def text_delta(chunk: Any) -> str | None:
    """The text of a parsed chunk that is one plain text delta: one choice, non-empty text, no
    tool calls, no finish reason (most of a stream). None for any other chunk, which a
    translator then reads on its general path."""
    if type(chunk) is not dict:
        return None
    choices = chunk.get("choices")
    if type(choices) is not list or len(choices) != 1:
        return None
    choice = choices[0]
    if type(choice) is not dict or choice.get("finish_reason"):
        return None
    delta = choice.get("delta")
    if type(delta) is not dict or delta.get("tool_calls"):
        return None
    text = delta.get("content")
    return text if type(text) is str and text else None


_loads = json.loads
# json.loads's own scanner (C), called without json.loads's keyword checks and its decoder's
# two Python layers: a stream parses one small document per event.
_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def loads(data: bytes) -> Any:
    """``json.loads(data)``: the same value, or the same error. The fast path (UTF-8 text that
    is one JSON value with nothing around it, what an event's data is) scans it directly;
    anything else (whitespace, a BOM, UTF-16/32, bad UTF-8, bad JSON) is left to
    ``json.loads``, which decides. A document nested too deep raises ``RecursionError``."""
    try:
        text = data.decode()
        value, end = _scan(text, 0)
        if end == len(text):
            return value
    except (ValueError, StopIteration):  # UnicodeDecodeError, JSONDecodeError; nothing at 0
        pass
    return _loads(data)


def parse(data: bytes) -> Any:
    """What ``json.loads`` makes of an event's data, None when it is not JSON (``loads``)."""
    try:
        return loads(data)
    except (ValueError, RecursionError):
        return None


def parsed_item(data: bytes) -> Any:
    """One event's data as an item of a stream's parsed chunks (``values.parsed_chunks``)."""
    return END if data == DONE_DATA else parse(data)


async def _framed(stream: Stream, reader: EventReader) -> AsyncIterator[list[Any]]:
    feed = reader.feed
    async for piece in stream.chunks():
        batch = [parsed_item(event.data) for event in feed(piece) if event.data]
        if batch:
            yield batch


def chunk_batches(stream: Stream, reader: EventReader) -> AsyncIterator[list[Any]]:
    """A chat stream's chunks, parsed, for a translator to another wire format: as the stream
    hands them over (``values.parsed_chunks``), else its bytes framed by ``reader`` (which
    raises ``EventTooLarge`` past its cap) and each event parsed here."""
    return parsed_chunks(stream) or _framed(stream, reader)
