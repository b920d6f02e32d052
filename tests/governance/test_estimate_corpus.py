"""The token estimate is an upper bound of OpenAI's own count on real-looking prompts (issue 21).

The corpus is tests/governance/estimate_corpus.py; the reference count
tests/governance/openai_tokens.py (tiktoken, cl100k_base, offline).
"""

from __future__ import annotations

import statistics

from gateway.governance import estimate
from tests.governance.estimate_corpus import TEXTS, requests
from tests.governance.openai_tokens import openai_count

SHARE_AT_LEAST = 0.99


def test_the_corpus_covers_every_script_it_names_and_tool_definitions() -> None:
    names = [name for name, _ in requests()]
    assert len(names) >= 100
    for script in TEXTS:
        assert any(name.startswith(script) for name in names)
    assert sum(name.startswith("tools-") for name in names) >= 9


def test_the_estimate_is_at_least_openais_count_for_99_percent_of_the_corpus() -> None:
    ratios: dict[str, float] = {}
    for name, body in requests():
        ratios[name] = estimate.prompt_tokens(body) / openai_count(body)
    under = sorted(name for name, ratio in ratios.items() if ratio < 1)
    share = 1 - len(under) / len(ratios)
    values = sorted(ratios.values())
    quartiles = statistics.quantiles(values, n=4)
    summary = (
        f"{len(values)} requests; estimate/actual min {values[0]:.2f}, quartiles "
        f"{quartiles[0]:.2f} {quartiles[1]:.2f} {quartiles[2]:.2f}, max {values[-1]:.2f}; "
        f"under the count: {under}"
    )
    print(summary)
    assert share >= SHARE_AT_LEAST, summary


def test_a_one_word_message_reserves_at_least_the_eight_tokens_openai_counts() -> None:
    body = {"messages": [{"role": "user", "content": "hello"}]}
    assert openai_count(body) == 8  # issue 21: the old estimate said 5
    assert estimate.prompt_tokens(body) >= 8
