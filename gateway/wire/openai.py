"""The OpenAI wire format: the gateway's internal shape and its main public API.

Ingress (``/v1/chat/completions``, ``/v1/embeddings``) passes OpenAI bodies through; every other
format is translated to and from this one (``gateway.wire.anthropic``). What is written here is
what every direction shares: reading ``usage``, writing ``usage``, and the ``chat.completion.chunk``
server-sent events that translated streams emit. Pure functions, no I/O.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.values import Usage

DONE = b"data: [DONE]\n\n"
MAX_SSE_LINE = 1 << 20


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def usage_from(usage: Any) -> Usage | None:
    """An OpenAI ``usage`` object as Usage (None when there is none)."""
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens", 0) if isinstance(details, dict) else 0
    return Usage(
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
        cached_tokens=_count(cached),
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


class UsageScanner:
    """Reads ``usage`` out of an OpenAI-format SSE body as its bytes go by, without holding the
    stream back: each chunk is scanned for complete lines, a partial last line is kept (at most
    ``MAX_SSE_LINE`` bytes of it)."""

    def __init__(self) -> None:
        self._tail = b""
        self.usage: Usage | None = None

    def scan(self, data: bytes) -> None:
        text = self._tail + data if self._tail else data
        cut = text.rfind(b"\n")
        if cut < 0:
            self._tail = text[-MAX_SSE_LINE:]
            return
        complete, self._tail = text[:cut], text[cut + 1 :]
        if b'"usage"' not in complete:
            return
        for line in complete.split(b"\n"):
            if line.startswith(b"data:") and b'"usage"' in line:
                try:
                    usage = json.loads(line[5:]).get("usage")
                except (ValueError, AttributeError):
                    continue
                parsed = usage_from(usage)
                if parsed is not None:
                    self.usage = parsed
