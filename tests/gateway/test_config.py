"""Config is typed and strict: errors name the file, the key (and line), and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.governance.pricing import PriceTable, deployment_prices
from gateway.serve import load_config, parse_config
from tests.conftest import REPO

GOOD = """
deployments:
  - model: gpt
    provider: openai
    base_url: https://api.openai.com/v1
    credential: env:OPENAI_API_KEY
"""


def error_for(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "gw.yaml")
    return caught.value


def test_the_bundled_config_loads_and_serves_mock_models() -> None:
    config = load_config(None)
    assert config.models() == ["mock-embedding", "mock-gpt"]
    assert config.verify.mode == "enforce"


def test_a_good_config_loads_with_named_defaults() -> None:
    config = parse_config(GOOD, "gw.yaml")
    deployment = config.deployments[0]
    assert deployment.timeouts.connect == 5.0 and deployment.timeouts.total == 600.0
    assert str(deployment.credential_ref) == "env:OPENAI_API_KEY"


def test_unknown_key_names_file_key_and_line() -> None:
    error = error_for(GOOD + "    colour: red\n")
    assert str(error) == "gw.yaml: deployments.0.colour (line 7): is not a known key"


def test_unknown_top_level_key_is_an_error() -> None:
    assert "servre" in str(error_for(GOOD + "servre: {}\n"))


def test_literal_key_is_refused_with_an_explanation_that_does_not_echo_it() -> None:
    secret = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
    error = error_for(GOOD.replace("env:OPENAI_API_KEY", secret))
    assert "deployments.0.credential" in str(error)
    assert "reference" in str(error) and "env:OPENAI_API_KEY" in str(error)
    assert secret not in str(error)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("    base_url: https://api.openai.com/v1\n", ""), "needs base_url"),
        (("    credential: env:OPENAI_API_KEY\n", ""), "needs credential"),
        (("provider: openai", "provider: azure"), "needs api_version"),
        (("https://api.openai.com/v1", "ftp://x"), "absolute http(s) URL"),
        (
            ("https://api.openai.com/v1", "https://user:pw@api.openai.com/v1"),
            "credentials in the URL",
        ),
        (("provider: openai", "provider: bedrockish"), "deployments.0.provider"),
    ],
)
def test_deployment_errors_say_what_was_expected(change: tuple[str, str], expected: str) -> None:
    assert expected in str(error_for(GOOD.replace(*change)))


def test_timeouts_must_be_positive() -> None:
    error = error_for(GOOD + "    timeouts: {read: 0}\n")
    assert "deployments.0.timeouts.read" in str(error)


def test_fallbacks_must_name_configured_models() -> None:
    error = error_for(GOOD + "router:\n  fallbacks: {gpt: [ghost]}\n")
    assert "ghost" in str(error)


def test_invalid_yaml_names_the_line() -> None:
    assert "line 3" in str(error_for("deployments:\n  - model: x\n  bad: [\n"))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "absent.yaml")


def test_every_problem_in_a_file_is_reported_each_with_its_key_and_line() -> None:
    text = GOOD + "    colour: red\n    timeouts: {read: 0}\nlogging: {level: loud}\n"
    error = error_for(text)
    assert [key for key, _ in error.problems] == [
        "deployments.0.colour (line 7)",
        "deployments.0.timeouts.read (line 8)",
        "logging.level (line 9)",
    ]
    assert str(error).startswith("gw.yaml: 3 problems:")


def test_cross_references_name_the_key_and_line_that_refers_to_nothing() -> None:
    text = (
        GOOD.replace("env:OPENAI_API_KEY", "vault:kv/llm/openai#api_key")
        + "router:\n  fallbacks: {gpt: [ghost]}\n"
        + "governance:\n  deployments:\n    nope: {rpm: 1}\n"
    )
    assert dict(error_for(text).problems) == {
        "router.fallbacks.gpt (line 8)": "names unknown model 'ghost'",
        "governance.deployments.nope (line 11)": "names no deployment; known: gpt/openai",
        "deployments.0.credential (line 6)": (
            "a vault reference needs a secrets.vault section (docs/secrets.md)"
        ),
    }


def test_a_repeated_deployment_id_names_the_second_deployment() -> None:
    second = GOOD.split("deployments:\n", 1)[1]
    (key, problem), *_ = error_for(GOOD + second).problems
    assert key.startswith("deployments.1.id")
    assert "already used by deployments.0" in problem


def test_the_readme_configuration_example_validates_as_written() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_config(example, "README.md")
    assert {d.provider for d in config.deployments} == {
        "openai",
        "azure",
        "anthropic",
        "openai_compatible",
        "gemini",
        "vertex_ai",
    }


def test_the_readme_config_example_validates_and_prices_every_deployment() -> None:
    """The README's configuration example is a config that starts: it validates, and every
    deployment in it has a price (a deployment without one refuses start-up)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_config(example, "README.md")
    prices = deployment_prices(config.deployments, config.governance, PriceTable.bundled())
    assert sorted(prices) == sorted(d.name for d in config.deployments)


@pytest.mark.parametrize(
    ("provider", "extra"),
    [
        ("azure", "base_url: https://x.openai.azure.com, api_version: '2024-10-21'"),
        ("bedrock", "base_url: https://bedrock-runtime.us-east-1.amazonaws.com"),
        ("gemini", "base_url: https://generativelanguage.googleapis.com/v1beta"),
        ("vertex_ai", "base_url: https://us-central1-aiplatform.googleapis.com/v1/projects/p"),
    ],
)
def test_a_wildcard_is_refused_where_the_model_is_part_of_the_url_the_provider_signs_or_routes(
    provider: str, extra: str
) -> None:
    text = (
        f"deployments:\n  - {{model: 'x/*', provider: {provider}, {extra}, "
        "credential: 'env:KEY'}\n"
    )
    with pytest.raises(ConfigError) as refused:
        parse_config(text, "test")
    assert "no wildcard" in str(refused.value)
