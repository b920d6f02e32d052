"""Egress: the allowlist at start-up, and the resolver guard on the addresses actually reached."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.abc import AbstractResolver, ResolveResult

from gateway.config import GatewayConfig
from gateway.errors import ConfigError
from gateway.integrity import policies_dir, project_root
from gateway.providers.egress import (
    EgressRefused,
    GuardedResolver,
    enforce,
    host_matches,
    load_policy,
    parse_policy,
)
from gateway.serve import parse_config
from tests.secrets.vaultlab import run

REPO_POLICY = project_root() / "policies" / "egress.yaml"


def check(cfg: GatewayConfig) -> None:
    """The start-up egress check, as the composition root runs it."""
    enforce(cfg.deployments, policies_dir(cfg.verify))


def config(base_url: str, provider: str = "openai", **extra: Any) -> Any:
    deployment = {
        "model": "m",
        "provider": provider,
        "base_url": base_url,
        "credential": "env:KEY",
        **extra,
    }
    if provider == "azure":
        deployment["api_version"] = "2024-10-21"
    return parse_config(yaml.safe_dump({"deployments": [deployment]}), "test")


def test_the_shipped_policy_loads_and_lists_the_openai_host() -> None:
    policy = load_policy(REPO_POLICY)
    assert policy.allows("openai", "api.openai.com")
    assert not policy.allows("openai", "api.openai.com.evil.example")


def test_wildcards_match_subdomains_only() -> None:
    assert host_matches("*.openai.azure.com", "mine.openai.azure.com")
    assert not host_matches("*.openai.azure.com", "openai.azure.com")
    assert not host_matches("*.openai.azure.com", "mine.openai.azure.com.evil.example")
    assert not host_matches("*.openai.azure.com", "evilopenai.azure.com")


def test_a_host_outside_the_allowlist_is_refused_at_start_up() -> None:
    with pytest.raises(ConfigError, match="not on the egress allowlist"):
        check(config("https://api.openai.com.evil.example/v1"))


def test_a_host_listed_for_another_provider_is_refused() -> None:
    with pytest.raises(ConfigError, match="provider openai"):
        check(config("https://api.groq.com/openai/v1"))


def test_allowed_hosts_pass() -> None:
    check(config("https://api.openai.com/v1"))
    check(config("https://mine.openai.azure.com", provider="azure"))


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest",
        "http://[::ffff:169.254.169.254]/",
        "http://127.0.0.1:8000/v1",
        "http://10.0.0.5/v1",
        "http://localhost:11434/v1",
        "http://[::1]:8000/v1",
    ],
)
def test_private_and_metadata_addresses_are_refused_unless_the_deployment_allows_them(
    url: str,
) -> None:
    with pytest.raises(ConfigError, match="allow_private_network"):
        check(config(url, provider="openai_compatible"))
    check(config(url, provider="openai_compatible", allow_private_network=True))


def test_a_missing_policy_file_refuses_start_up(tmp_path: Path) -> None:
    cfg = config("https://api.openai.com/v1", provider="openai")
    cfg = cfg.model_copy(
        update={"verify": cfg.verify.model_copy(update={"policies_dir": str(tmp_path)})}
    )
    with pytest.raises(ConfigError, match="cannot be read"):
        check(cfg)


@pytest.mark.parametrize(
    "data",
    [
        {"providers": {}},
        {"version": 2, "providers": {}},
        {"version": 1, "providers": {"openai": {"hosts": ["api.openai.com"], "extra": 1}}},
        {"version": 1, "providers": {"openai": {"hosts": ["http://api.openai.com"]}}},
        {"version": 1, "providers": {"openai": {"hosts": ["api.*.com"]}}},
        {"version": 1, "providers": {"openai": {"hosts": "api.openai.com"}}},
    ],
)
def test_a_policy_that_does_not_validate_is_refused(data: Any) -> None:
    with pytest.raises(ConfigError):
        parse_policy(data, "egress.yaml")


class Answers(AbstractResolver):
    """A resolver double that answers with fixed addresses: DNS for a name that points at the
    metadata service cannot be arranged on this machine, so the answer is scripted."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


def test_a_name_resolving_to_the_metadata_service_is_refused_at_connect_time() -> None:
    guard = GuardedResolver("api.example.com", False, Answers("169.254.169.254"))
    with pytest.raises(EgressRefused):
        run(guard.resolve("api.example.com", 443))


def test_one_private_address_among_public_ones_refuses_the_name() -> None:
    guard = GuardedResolver("api.example.com", False, Answers("8.8.8.8", "10.1.2.3"))
    with pytest.raises(EgressRefused):
        run(guard.resolve("api.example.com", 443))


def test_public_addresses_pass_and_private_ones_pass_only_when_allowed() -> None:
    public = GuardedResolver("api.example.com", False, Answers("8.8.8.8"))
    assert [r["host"] for r in run(public.resolve("api.example.com", 443))] == ["8.8.8.8"]
    local = GuardedResolver("vllm.internal", True, Answers("10.1.2.3"))
    assert [r["host"] for r in run(local.resolve("vllm.internal", 8000))] == ["10.1.2.3"]


def test_the_guard_resolves_only_the_pinned_host() -> None:
    guard = GuardedResolver("api.example.com", True, Answers("8.8.8.8"))
    with pytest.raises(EgressRefused):
        run(guard.resolve("elsewhere.example.com", 443))


def test_a_real_lookup_of_localhost_is_refused_without_the_flag() -> None:
    guard = GuardedResolver("localhost", False)
    with pytest.raises(EgressRefused):
        run(guard.resolve("localhost", 80))
