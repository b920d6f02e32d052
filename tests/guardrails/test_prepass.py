"""The RE2 pre-pass (``gateway.guardrails.detectors.Prepass``) only ever skips work: each
detector's gate is a condition every text it matches in meets, so a policy's scan with the
pre-pass finds exactly what running every detector finds. Checked over the labelled corpus and
over variants of it that move each sample against its neighbours (joined, wrapped in other
characters, written with full-width digits, cut short), where a gate too narrow would show."""

from __future__ import annotations

import random

from gateway.guardrails import detectors
from gateway.guardrails.detectors import scan
from tests.guardrails import corpus
from tests.guardrails.test_detectors import EVERYTHING

FULL_WIDTH = {ord("0") + n: 0xFF10 + n for n in range(10)}  # the full-width digits
WRAPPERS = ("{}", "({})", '"{}",', "x{}y", "key={}&", "\t{}\n", "é{}é", "-{}-", ".{}.", "_{}_")


def variants(rng: random.Random) -> list[str]:
    texts = [text for text, _ in corpus.build()]
    out = list(texts)
    for _ in range(800):
        a, b = rng.choice(texts), rng.choice(texts)
        out.append(rng.choice(WRAPPERS).format(a) + rng.choice((" ", "", "\n", "; ")) + b)
        out.append(a.translate(FULL_WIDTH))
        out.append(a[: rng.randrange(len(a) + 1)])
    return out


def test_the_pre_pass_never_changes_what_a_policy_finds() -> None:
    assert EVERYTHING.prepass is not None
    differ = [
        text[:80]
        for text in variants(random.Random(18))
        if EVERYTHING.inspect(text) != scan(EVERYTHING.detectors, text)
    ]
    assert differ == []


def test_the_pre_pass_skips_the_detectors_whose_gate_a_plain_prompt_fails() -> None:
    assert EVERYTHING.prepass is not None
    prose = "Please summarise the quarterly report for the board in three short paragraphs. " * 40
    assert EVERYTHING.prepass.running(prose) == []
    running = {d.name for d in EVERYTHING.prepass.running(prose + " mail a.b@example.com")}
    assert running == {"email"}


def test_a_run_of_hex_digits_like_a_uuid_does_not_wake_the_entropy_check() -> None:
    assert EVERYTHING.prepass is not None
    uuid = "7f464450-0436-481f-a90c-16370f6f2585 3f786850e387550fdab836ed7e6dc881de23001b"
    assert "high_entropy" not in {d.name for d in EVERYTHING.prepass.running(uuid)}
    token = "Zx9Qw3Er7Ty1Ui5Op0As2Df4Gh6Jk8Lm"
    assert "high_entropy" in {d.name for d in EVERYTHING.prepass.running(token)}


def test_token_runs_over_a_non_ascii_text_are_found_by_re_with_the_same_offsets() -> None:
    token = "Zx9Qw3Er7Ty1Ui5Op0As2Df4Gh6Jk8Lm"
    ascii_text = f"a {token} b"
    other = f"é {token} b"
    assert detectors.long_words(ascii_text) == [(2, 2 + len(token))]
    assert detectors.long_words(other) == [(2, 2 + len(token))]
