"""The detectors against the labelled corpus (tests/guardrails/corpus.py), and the checks each one
makes that a pattern alone cannot: Luhn, mod-97, the SSA's rules, strict phone grouping."""

from __future__ import annotations

import pytest

from gateway.config.guardrails import Policy as PolicyConfig
from gateway.guardrails import personal, secrets
from gateway.guardrails.policy import compile_policy, default_policy
from tests.guardrails import corpus

EVERYTHING = compile_policy(
    "all", PolicyConfig(detectors={"personal": "mask", "secrets": "mask", "injection": "mask"})
)
TARGETED = [
    "card", "iban", "email", "openai_key", "anthropic_key", "google_key", "aws_access_key",
    "aws_secret_key", "github_token", "slack_token", "stripe_key",
]  # fmt: skip


@pytest.fixture(scope="module")
def scores() -> dict[str, tuple[float, float, int]]:
    return corpus.score(EVERYTHING, corpus.build())


@pytest.mark.parametrize("detector", TARGETED)
def test_cards_ibans_emails_and_provider_keys_meet_the_precision_and_recall_targets(
    scores: dict[str, tuple[float, float, int]], detector: str
) -> None:
    precision, recall, positives = scores[detector]
    assert positives >= 100
    assert recall >= 0.98, (detector, recall)
    assert precision >= 0.95, (detector, precision)


def test_every_builtin_detector_has_positives_in_the_corpus_and_scores_at_least_090(
    scores: dict[str, tuple[float, float, int]],
) -> None:
    for name in {d.name for d in EVERYTHING.detectors}:
        precision, recall, positives = scores.get(name, (1.0, 0.0, 0))
        if name == "high_entropy":  # the catch-all: only its false positives are scored
            assert precision == 1.0 or positives == 0
            continue
        assert positives >= 100, name
        assert recall >= 0.9 and precision >= 0.9, (name, precision, recall)


def test_the_hard_negatives_set_off_no_detector_at_all() -> None:
    rng = corpus.random.Random(7)
    fired = {
        text[:60]: [m.detector for m in EVERYTHING.inspect(text)]
        for text in corpus.negatives(rng)
        if EVERYTHING.inspect(text)
    }
    assert fired == {}


def test_a_card_number_needs_its_luhn_digit_and_an_issuer_prefix() -> None:
    assert personal.card_number("4111 1111 1111 1111")
    assert not personal.card_number("4111 1111 1111 1112")  # Luhn
    assert not personal.card_number("9111 1111 1111 1115")  # no scheme issues 9


def test_an_iban_needs_its_countrys_length_and_mod_97() -> None:
    found = list(personal.IBAN.find("pay DE89 3704 0044 0532 0130 00 AND MORE"))
    assert found == [(4, 31)]
    assert list(personal.IBAN.find("DE88 3704 0044 0532 0130 00")) == []
    assert list(personal.IBAN.find("DE89 3704 0044 0532 0130 0")) == []


def test_ssns_follow_the_ssa_rules() -> None:
    assert personal.ssn("536-22-1234")
    for number in ("000-12-3456", "666-12-3456", "912-12-3456", "536-00-1234", "536-22-0000"):
        assert not personal.ssn(number), number


def test_digit_groups_that_are_not_grouped_like_a_phone_number_are_not_one() -> None:
    phone = personal.PhoneDetector(("US",))
    assert list(phone.find("call (415) 555-2671 today")) == [(5, 19)]
    assert list(phone.find("ref 3607 3375 88")) == []


def test_high_entropy_skips_hex_digests_and_base64_longer_than_a_token() -> None:
    assert secrets.high_entropy("Zx9Qw3Er7Ty1Ui5Op0As2Df4Gh6Jk8Lm")
    assert not secrets.high_entropy("3f786850e387550fdab836ed7e6dc881de23001b")
    assert list(secrets.HIGH_ENTROPY.find("data:image/png;base64," + "QUJDRGVm" * 40)) == []


def test_masking_puts_a_typed_placeholder_where_each_match_was() -> None:
    policy = default_policy()
    text = "mail a.b@example.com, card 4111-1111-1111-1111."
    assert policy.mask(text, policy.inspect(text)) == "mail [EMAIL], card [CARD]."
