"""The ``guardrails`` config section: a policy that cannot run as written is refused at start-up,
with the file, the key and its line; a pattern RE2 cannot match in linear time (a backreference,
a lookaround: what makes a backtracking engine catastrophic) is among them."""

from __future__ import annotations

import pytest

from gateway.errors import ConfigError
from gateway.guardrails.pipeline import Guardrails
from gateway.serve import parse_config

HEAD = """deployments:
  - model: m
    provider: mock
guardrails:
"""


def error_for(section: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(HEAD + section, "gw.yaml")
    return str(caught.value)


def test_a_pattern_with_a_backreference_is_refused_naming_its_line() -> None:
    error = error_for(
        "  policies:\n    p:\n      patterns:\n        - {name: rep, regex: '(a+)\\1'}\n"
    )
    assert "gw.yaml: guardrails.policies.p.patterns.0.regex (line 8)" in error
    assert "linear time" in error and "backreferences" in error


def test_a_pattern_with_a_lookahead_is_refused() -> None:
    error = error_for("  policies:\n    p:\n      patterns: [{name: la, regex: '(?=x)y'}]\n")
    assert "guardrails.policies.p.patterns.0.regex" in error and "RE2" in error


def test_a_pattern_that_matches_the_empty_string_is_refused() -> None:
    error = error_for("  policies:\n    p:\n      patterns: [{name: e, regex: 'a*'}]\n")
    assert "matches the empty string" in error


def test_the_classic_redos_pattern_is_matched_by_re2_in_linear_time_not_refused() -> None:
    """(a+)+$ has no backreference, so RE2 accepts it, and matches it without backtracking:
    a 100 000-character text that would keep a backtracking engine busy for longer than the
    universe has existed takes one pass. (No timing is asserted: the bound is RE2's
    construction, and Python's ``re`` would not return from this test at all.)"""
    config = parse_config(
        HEAD + "  default: p\n  policies:\n    p:\n"
        "      patterns: [{name: redos, regex: '(a+)+$', action: block}]\n",
        "gw.yaml",
    )
    policy = Guardrails(config.guardrails).policies["p"]
    assert policy.inspect("a" * 100_000 + "!") == []
    assert [m.detector for m in policy.inspect("aaaa")] == ["pattern:redos"]


def test_an_unknown_detector_is_refused_with_the_known_ones_listed() -> None:
    error = error_for("  policies:\n    p:\n      detectors: {credit_card: mask}\n")
    assert "guardrails.policies.p.detectors (line 7)" in error
    assert "unknown detector 'credit_card'" in error and "card" in error


def test_an_unknown_action_is_refused() -> None:
    error = error_for("  policies:\n    p:\n      detectors: {card: redact}\n")
    assert "guardrails.policies.p.detectors.card" in error


def test_a_key_team_or_default_that_names_no_policy_is_refused() -> None:
    assert "default names no policy 'nope'" in error_for("  default: nope\n")
    error = error_for("  teams: {payments: strict}\n  policies: {open: {}}\n")
    assert "teams.payments names no policy 'strict'; known: open" in error


def test_no_guardrails_section_means_no_policy_and_the_pipeline_is_falsy() -> None:
    config = parse_config(HEAD.removesuffix("guardrails:\n"), "gw.yaml")
    assert not Guardrails(config.guardrails)
