"""How many tokens a request may use, estimated before it is sent (pure functions).

Token limits and budgets reserve this estimate and settle to the actual usage afterwards, so the
prompt estimate is meant to be an upper bound of the provider's own count for ordinary text in any
script (issue 21; measured in tests/governance/test_estimate_corpus.py against OpenAI's
cl100k_base and o200k_base tokenizers). It follows the way byte-level BPE tokenizers cut text
before merging:

- a run of ASCII letters costs one token per four letters (at least one); a run of digits one
  per three digits plus one for a space before it; every other printable ASCII character one;
  a single space nothing (it joins the next word), any longer run of white space one per
  sixteen characters (at least one);
- a character outside ASCII costs by its UTF-8 length: one token for the two-byte letters of
  Latin, Greek and Cyrillic, one and a half for the other two-byte ones (Hebrew, Arabic ...) and
  for three bytes (CJK, kana, Hangul, Devanagari, Thai), three for four (emoji and other astral
  characters); a byte-level tokenizer never needs more than one token per byte, and the common
  characters of these scripts take one or two.

A chat adds what OpenAI documents for its framing: three tokens per message plus its role (four),
one per ``name``, and three that prime the reply. Tool and function definitions count as the
text of their JSON, plus the framing the provider wraps around them. Images count a flat amount.
The completion part is ``max_completion_tokens`` / ``max_tokens`` times ``n``, or the configured
default when the request names none; that default is the only place a request can use more than
it reserved (the documented slack).
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

BYTES_PER_TOKEN = 3  # for a reply whose usage never came: its size over this (streams.py)
MESSAGE_OVERHEAD = 4  # OpenAI: three per message, and the role
NAME_OVERHEAD = 1
REPLY_PRIMING = 3
TOOLS_OVERHEAD = 20  # the namespace the provider wraps around tool definitions (7 + 12 + slack)
IMAGE_TOKENS = 1000

LETTERS_PER_TOKEN = 4
DIGITS_PER_TOKEN = 3
SPACES_PER_TOKEN = 16
# A non-ASCII character's cost, in quarter tokens: by its UTF-8 length, and Latin, Greek and
# Cyrillic (below U+0530) apart from the other two-byte scripts.
EUROPEAN_QUARTERS = 4
QUARTERS_BY_UTF8_LENGTH = {2: 6, 3: 6, 4: 12}
EUROPEAN_END = 0x0530

_PIECES = re.compile(r"[A-Za-z]+|[0-9]+|[ \t\r\n\f\v]+|[\x00-\x7f]|[^\x00-\x7f]+")


class Estimate(NamedTuple):
    prompt_tokens: int
    completion_tokens: int

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _quarters(char: str) -> int:
    if ord(char) < EUROPEAN_END:
        return EUROPEAN_QUARTERS
    return QUARTERS_BY_UTF8_LENGTH[len(char.encode("utf-8", "surrogatepass"))]


def text_tokens(text: str) -> int:
    """An upper bound of the tokens ``text`` takes (see the module docstring)."""
    tokens = 0
    quarters = 0
    for match in _PIECES.finditer(text):
        piece = match.group()
        first = piece[0]
        if first.isascii() and first.isalpha():
            tokens += -(-len(piece) // LETTERS_PER_TOKEN)
        elif first.isascii() and first.isdigit():
            tokens += -(-len(piece) // DIGITS_PER_TOKEN) + 1
        elif first.isascii() and first.isspace():
            if piece != " ":
                tokens += -(-len(piece) // SPACES_PER_TOKEN)
        elif first.isascii():
            tokens += 1
        else:
            quarters += sum(_quarters(char) for char in piece)
    return tokens + -(-quarters // 4)


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return text_tokens(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict) and part.get("type") in ("image_url", "input_image"):
                total += IMAGE_TOKENS
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                total += text_tokens(part["text"])
            else:
                total += text_tokens(json.dumps(part, ensure_ascii=False))
        return total
    if content is None:
        return 0
    return text_tokens(json.dumps(content, ensure_ascii=False))


def prompt_tokens(body: dict[str, Any]) -> int:
    total = 0
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        total += MESSAGE_OVERHEAD + _content_tokens(message.get("content"))
        if isinstance(message.get("name"), str):
            total += NAME_OVERHEAD + text_tokens(message["name"])
        if "tool_calls" in message:
            total += _content_tokens(message["tool_calls"])
    if messages:
        total += REPLY_PRIMING
    for extra in ("tools", "functions"):
        if body.get(extra):
            total += TOOLS_OVERHEAD + _content_tokens(body[extra])
    if "response_format" in body:
        total += _content_tokens(body["response_format"])
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
