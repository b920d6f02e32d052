"""Cohere's finish reasons as OpenAI's, in answers and in streams: a safety cut is
``content_filter`` (never a plain ``stop`` a client would take for a whole answer), a context
limit is ``length``, and a model that failed part-way (``ERROR``, ``TIMEOUT``) is an upstream
error, not an answer. Pure translation (``gateway.wire.cohere``): no upstream is needed to show
it; the round trip through a gateway is in test_cohere_upstream.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.errors import UpstreamError
from gateway.wire import cohere


def answer(reason: str) -> dict[str, Any]:
    return {
        "id": "c-1",
        "finish_reason": reason,
        "message": {"role": "assistant", "content": [{"type": "text", "text": "partial"}]},
        "usage": {"billed_units": {"input_tokens": 3, "output_tokens": 2}},
    }


def end_event(reason: str) -> bytes:
    return json.dumps({"type": "message-end", "delta": {"finish_reason": reason}}).encode()


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("COMPLETE", "stop"),
        ("STOP_SEQUENCE", "stop"),
        ("MAX_TOKENS", "length"),
        ("TOOL_CALL", "tool_calls"),
        ("ERROR_TOXIC", "content_filter"),
        ("ERROR_LIMIT", "length"),
    ],
)
def test_a_cohere_finish_reason_becomes_openais_in_answers_and_streams(
    reason: str, expected: str
) -> None:
    completion, _ = cohere.completion_from_cohere(answer(reason), "command")
    assert completion["choices"][0]["finish_reason"] == expected
    chunks = cohere.CohereStreamTranslator("command", include_usage=False).feed(end_event(reason))
    finish = json.loads(chunks[0].removeprefix(b"data: ").strip())
    assert finish["choices"][0]["finish_reason"] == expected


@pytest.mark.parametrize("reason", ["ERROR", "TIMEOUT"])
def test_a_model_that_failed_part_way_is_an_upstream_error_not_an_answer(reason: str) -> None:
    with pytest.raises(UpstreamError, match=reason):
        cohere.completion_from_cohere(answer(reason), "command")
    with pytest.raises(UpstreamError, match=reason):
        cohere.CohereStreamTranslator("command", include_usage=False).feed(end_event(reason))
