"""How many tokens a request may use, estimated before it is sent (pure functions).

Token limits and budgets reserve this estimate and settle to the actual usage afterwards. The
prompt estimate is deliberately generous: one token per three UTF-8 bytes of text (English runs
near four bytes a token, CJK near three), four per message for framing, a flat amount per image.
The completion part is ``max_completion_tokens`` / ``max_tokens`` times ``n``, or the configured
default when the request names none; that default is the only place a request can use more than
it reserved (the documented slack).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

BYTES_PER_TOKEN = 3
MESSAGE_OVERHEAD = 4
IMAGE_TOKENS = 1000


class Estimate(NamedTuple):
    prompt_tokens: int
    completion_tokens: int

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _text_tokens(size: int) -> int:
    return -(-size // BYTES_PER_TOKEN)


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return _text_tokens(len(content.encode()))
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict) and part.get("type") in ("image_url", "input_image"):
                total += IMAGE_TOKENS
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                total += _text_tokens(len(part["text"].encode()))
            else:
                total += _text_tokens(len(json.dumps(part).encode()))
        return total
    if content is None:
        return 0
    return _text_tokens(len(json.dumps(content).encode()))


def prompt_tokens(body: dict[str, Any]) -> int:
    total = 0
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        total += MESSAGE_OVERHEAD + _content_tokens(message.get("content"))
        if "tool_calls" in message:
            total += _content_tokens(json.dumps(message["tool_calls"]))
    for extra in ("tools", "functions", "response_format"):
        if extra in body:
            total += _content_tokens(json.dumps(body[extra]))
    return total


def chat(body: dict[str, Any], default_max_tokens: int) -> Estimate:
    limit = body.get("max_completion_tokens")
    if not isinstance(limit, int) or limit <= 0:
        limit = body.get("max_tokens")
    if not isinstance(limit, int) or limit <= 0:
        limit = default_max_tokens
    n = body.get("n")
    choices = n if isinstance(n, int) and n > 0 else 1
    return Estimate(prompt_tokens(body), limit * choices)


def embeddings(body: dict[str, Any]) -> Estimate:
    items = body.get("input")
    if not isinstance(items, list):
        items = [items]
    total = 0
    for item in items:
        if isinstance(item, int):
            total += 1  # a pre-tokenised input: one token per integer
        elif isinstance(item, list):
            total += len(item)
        else:
            total += _content_tokens(item)
    return Estimate(total, 0)
