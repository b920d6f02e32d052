"""``sealgate config import-litellm`` (issue 14, item 7) over LiteLLM proxy config shapes written
from LiteLLM's documented format (tests/assets/litellm/README.md says which section each comes
from): what maps is carried over into a config Sealgate's own loader accepts, every setting that
is not is reported on its own line with the line it is on, and no literal secret is copied."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from gateway.config.litellm import convert
from gateway.serve import parse_config
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "litellm"
SHAPES = sorted(p.name for p in ASSETS.glob("*.yaml"))
SECRETS = ("sk-literal-DO-NOT-COPY", "sk-master-DO-NOT-COPY", "hunter2-DO-NOT-COPY")


def _convert(name: str) -> tuple[dict[str, Any], dict[str, str]]:
    conversion = convert((ASSETS / name).read_text())
    notes = {n.key: n.render(name) for n in conversion.notes}
    return conversion.config, notes


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "config", "import-litellm", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("name", SHAPES)
def test_every_shape_becomes_a_config_the_sealgate_loader_accepts(name: str) -> None:
    config, _ = _convert(name)
    parsed = parse_config(yaml.safe_dump(config), name)
    assert parsed.deployments


def test_quickstart_maps_providers_endpoints_and_environment_keys() -> None:
    config, notes = _convert("quickstart.yaml")
    by_model = {d["model"]: d for d in config["deployments"]}
    assert by_model["gpt-4o"] == {
        "model": "gpt-4o",
        "provider": "openai",
        "base_url": "https://api.openai.com/v1",
        "credential": "env:OPENAI_API_KEY",
    }
    azure = by_model["azure-gpt-4o"]
    assert (azure["provider"], azure["upstream_model"]) == ("azure", "my-gpt4o-deployment")
    assert azure["api_version"] == "2024-10-21"
    claude = by_model["claude-sonnet"]
    assert claude["base_url"] == "https://api.anthropic.com"
    assert notes["litellm_settings.drop_params"].startswith("quickstart.yaml:20: ")
    assert "not carried over" in notes["general_settings.master_key"]


def test_load_balancing_keeps_every_deployment_its_limits_strategy_and_redis() -> None:
    config, notes = _convert("load-balancing.yaml")
    assert [d["provider"] for d in config["deployments"]] == ["azure", "azure", "openai"]
    limits = config["governance"]["deployments"]
    assert limits["gpt-4o/azure"] == {"rpm": 600, "tpm": 200000}
    assert limits["gpt-4o/azure-2"] == {"rpm": 300, "tpm": 100000}
    assert limits["gpt-4o/openai"] == {"rpm": 100}  # rpm on the entry, not in litellm_params
    assert config["router"]["groups"]["gpt-4o"]["strategy"] == "usage"
    assert config["router"]["retries"] == 2
    assert all(d["timeouts"] == {"total": 30.0} for d in config["deployments"])
    assert config["governance"]["counters"] == "redis"
    assert config["governance"]["redis"] == {"url": "redis://redis.internal:6379/0"}
    assert set(notes) == {
        "router_settings.redis_password",
        "router_settings.enable_pre_call_checks",
    }


def test_fallbacks_by_error_class_retries_breaker_and_weights() -> None:
    config, notes = _convert("fallbacks.yaml")
    router = config["router"]
    assert router["fallbacks"] == {"gpt-4o": ["claude"]}
    assert router["groups"]["gpt-4o"] == {
        "fallbacks": {"context_window": ["gpt-4o-128k"]},
        "strategy": "weighted",
    }
    assert router["groups"]["claude"] == {"fallbacks": {"content_policy": ["gpt-4o"]}}
    assert (router["retries"], router["cooldown_seconds"]) == (3, 30.0)
    assert router["breaker"] == {"failures": 4}
    first, second = config["deployments"][:2]
    assert (first["weight"], second["weight"]) == (3, 1)
    assert first["timeouts"] == {"total": 20.0}  # its own timeout over request_timeout
    assert second["timeouts"] == {"total": 10.0}
    assert set(notes) == {
        "model_list[0].litellm_params.stream_timeout",
        "model_list[0].litellm_params.max_retries",
        "router_settings.retry_after",
    }
    assert notes["router_settings.retry_after"].startswith("fallbacks.yaml:37: ")


def test_mixed_providers_compatible_servers_prices_cache_and_what_has_no_equivalent() -> None:
    config, notes = _convert("mixed-providers.yaml")
    by_model = {d["model"]: d for d in config["deployments"]}
    assert "bedrock-claude" not in by_model
    assert "Sealgate has no bedrock provider" in notes["model_list[3].litellm_params.model"]
    assert by_model["llama3"]["base_url"] == "http://localhost:11434/v1"
    assert by_model["llama3"]["allow_private_network"] is True
    assert by_model["qwen"]["upstream_model"] == "Qwen/Qwen2.5-7B-Instruct"
    assert by_model["groq-llama"]["base_url"] == "https://api.groq.com/openai/v1"
    assert by_model["my-gpt"]["id"] == "my-gpt-primary"
    prices = config["governance"]["deployments"]["my-gpt-primary"]["prices"]
    assert prices == {"input": "0.15", "output": "0.6"}
    assert config["cache"] == {"backend": "redis", "ttl_seconds": 600.0}
    assert config["storage"] == {"url": "postgresql://litellm@db.internal:5432/litellm"}
    for key in ("litellm_settings.success_callback", "general_settings.alerting"):
        assert "not carried over" in notes[key]


def test_literal_secrets_are_never_copied_and_each_is_reported() -> None:
    config, notes = _convert("literal-keys.yaml")
    text = yaml.safe_dump(config) + "\n".join(notes.values())
    for secret in SECRETS:
        assert secret not in text
    assert config["deployments"] == [
        {
            "model": "gpt-4o",
            "provider": "openai",
            "base_url": "https://api.openai.com/v1",
            "credential": "env:GPT_4O_API_KEY",
        }
    ]
    assert "env:GPT_4O_API_KEY" in notes["model_list[0].litellm_params.api_key"]
    assert "wildcard" in notes["model_list[1]"]
    assert "password" in notes["general_settings.database_url"]
    assert "storage" not in config


def test_the_cli_writes_yaml_on_stdout_notes_on_stderr_and_exits_1_when_something_is_lost(
    tmp_path: Path,
) -> None:
    done = _run(str(ASSETS / "literal-keys.yaml"))
    assert done.returncode == 1
    assert yaml.safe_load(done.stdout)["deployments"][0]["model"] == "gpt-4o"
    lines = done.stderr.splitlines()
    alias = "literal-keys.yaml:14: router_settings.model_group_alias: not carried over: "
    assert any(alias in line for line in lines)
    for secret in SECRETS:
        assert secret not in done.stdout and secret not in done.stderr
    out = tmp_path / "sealgate.yaml"
    assert _run(str(ASSETS / "quickstart.yaml"), "--output", str(out)).returncode == 1
    assert yaml.safe_load(out.read_text())["deployments"][2]["provider"] == "anthropic"


def test_the_cli_exits_2_on_a_file_that_is_not_a_litellm_config(tmp_path: Path) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text("deployments: []\n")
    done = _run(str(bad))
    assert done.returncode == 2 and "no model_list" in done.stderr and done.stdout == ""
    assert _run(str(tmp_path / "missing.yaml")).returncode == 2


def test_an_imported_config_serves_chat_through_a_running_gateway(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    litellm = f"""
model_list:
  - model_name: local-gpt
    litellm_params:
      model: openai/upstream-gpt
      api_base: {upstream.base_url}/v1
      api_key: os.environ/IMPORTED_KEY
      rpm: 50
"""
    source = tmp_path / "litellm.yaml"
    source.write_text(litellm)
    done = _run(str(source))
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    config["verify"] = {"mode": "off"}
    config["governance"]["default_prices"] = {"input": "0"}
    gateway = GatewayProcess(
        tmp_path / "gw", yaml.safe_dump(config), env={"IMPORTED_KEY": "sk-imported-upstream"}
    ).start()
    try:
        key = gateway.create_key(["local-gpt"])["key"]
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as sdk:
            reply = sdk.chat.completions.create(
                model="local-gpt", messages=[{"role": "user", "content": "hi"}]
            )
        assert reply.choices[0].message.content == FakeUpstream.REPLY_TEXT
        seen = upstream.requests[-1]
        assert seen.body["model"] == "upstream-gpt"
        assert seen.headers["Authorization"] == "Bearer sk-imported-upstream"
    finally:
        gateway.stop()
