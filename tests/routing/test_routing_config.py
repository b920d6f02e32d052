"""The router section of the config: strategies, fallbacks by class and weights are checked,
and every error names the file, the key and its line."""

from __future__ import annotations

import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.providers.registry import PROVIDERS

HEAD = """deployments:
  - {model: m, provider: mock}
  - {model: big, provider: mock}
"""


def refused(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(HEAD + text, "gw.yaml", PROVIDERS)
    return caught.value


def test_an_unknown_strategy_is_refused_at_its_line_with_the_known_ones() -> None:
    error = refused("router:\n  groups:\n    m:\n      strategy: fastest\n")
    assert error.source == "gw.yaml"
    assert error.key == "router.groups.m.strategy (line 7)"
    assert "'round_robin'" in error.problem and "'latency'" in error.problem


def test_a_fallback_of_a_class_that_names_no_model_is_refused_at_its_key() -> None:
    error = refused("router:\n  groups:\n    m:\n      fallbacks: {context_window: [huge]}\n")
    assert error.key.startswith("router.groups.m.fallbacks.context_window (line 7)")
    assert "unknown model 'huge'" in error.problem


def test_a_group_for_a_model_that_does_not_exist_is_refused() -> None:
    error = refused("router:\n  groups:\n    nope: {strategy: weighted}\n")
    assert error.key.startswith("router.groups.nope")
    assert "unknown model 'nope'" in error.problem


def test_an_unknown_error_class_is_refused() -> None:
    error = refused("router:\n  groups:\n    m:\n      fallbacks: {timeouts: [big]}\n")
    assert error.key.startswith("router.groups.m.fallbacks.timeouts")
    assert error.problem == "is not a known key"


def test_a_weight_must_be_positive() -> None:
    error = refused("  - {model: m, provider: mock, id: w, weight: 0}\n")
    assert error.key.startswith("deployments.2.weight (line 4)")


def test_the_general_fallbacks_and_the_classes_resolve_in_order() -> None:
    text = (
        "router:\n  fallbacks: {m: [big]}\n  groups:\n    m: {fallbacks: {content_policy: [big]}}\n"
    )
    settings = parse_config(HEAD + text, "gw.yaml", PROVIDERS).router
    assert settings.fallbacks_for("m", "general") == ["big"]
    assert settings.fallbacks_for("m", "rate_limited") == ["big"]  # the general list
    assert settings.fallbacks_for("m", "content_policy") == ["big"]
    assert settings.fallbacks_for("m", "context_window") == []  # only its own
