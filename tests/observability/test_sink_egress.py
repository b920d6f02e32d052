"""A sink's host must be on the signed egress allowlist (policies/egress.yaml, under ``sink``),
as a provider's must: a sink whose host is not listed refuses start-up with an error that names
the config key and the policy file; a listed one starts; a private or loopback literal needs
``allow_private_network`` on the sink instead."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.config import GatewayConfig
from gateway.errors import ConfigError
from gateway.providers import egress
from gateway.serve import parse_config
from tests.governance import gateways
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"
EGRESS = """version: 1
providers:
  sink:
    hosts: [siem.example.com, "*.logs.example.org"]
"""
SINKS = """
sinks:
  - {name: siem, type: webhook, url: "https://siem.example.com/hook", secret: "env:X_SECRET"}
  - {name: archive, type: s3, endpoint: "https://eu.logs.example.org", bucket: spend,
     access_key_id: "env:X_ID", secret_access_key: "env:X_SECRET"}
  - {name: collector, type: otlp_logs, endpoint: "https://otel.logs.example.org/v1/logs"}
"""
BASE = """
deployments:
  - {model: gpt, provider: mock}
verify: {mode: "off"}
"""


def policies(tmp_path: Path, egress_text: str) -> Path:
    directory = tmp_path / "policies"
    shutil.copytree(REPO_POLICIES, directory)
    (directory / "egress.yaml").write_text(egress_text)
    return directory


def config(text: str) -> GatewayConfig:
    return parse_config(BASE + text, "test.yaml")


def test_sinks_whose_hosts_are_on_the_allowlist_pass(tmp_path: Path) -> None:
    egress.enforce_sinks(config(SINKS).sinks, policies(tmp_path, EGRESS))


@pytest.mark.parametrize(
    ("where", "listed", "host"),
    [
        ("sinks.0.url", "siem.example.com", "evil.example.net"),
        ("sinks.1.endpoint", "eu.logs.example.org", "logs.example.org.evil.net"),
        ("sinks.2.endpoint", "otel.logs.example.org", "logs.example.org"),  # not '*.' itself
    ],
)
def test_a_sink_whose_host_is_off_the_allowlist_is_refused_naming_its_key(
    tmp_path: Path, where: str, listed: str, host: str
) -> None:
    sinks = config(SINKS.replace(listed, host)).sinks
    with pytest.raises(ConfigError) as caught:
        egress.enforce_sinks(sinks, policies(tmp_path, EGRESS))
    message = str(caught.value)
    assert where in message
    assert f"host {host} is not on the egress allowlist for sink" in message
    assert "egress.yaml" in message


def test_a_provider_s_host_is_not_a_sink_s(tmp_path: Path) -> None:
    text = "version: 1\nproviders: {openai: {hosts: [siem.example.com]}}\n"
    with pytest.raises(ConfigError, match=r"sinks\.0\.url"):
        egress.enforce_sinks(config(SINKS).sinks, policies(tmp_path, text))


def test_a_loopback_sink_with_allow_private_network_needs_no_entry(tmp_path: Path) -> None:
    text = SINKS.replace("https://siem.example.com/hook", "http://127.0.0.1:9/hook").replace(
        'secret: "env:X_SECRET"}', 'secret: "env:X_SECRET", allow_private_network: true}', 1
    )
    sinks = config(text).sinks[:1]
    egress.enforce_sinks(sinks, policies(tmp_path, "version: 1\nproviders: {}\n"))


def test_a_gateway_with_a_sink_off_the_allowlist_refuses_to_start(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    directory = policies(tmp_path, EGRESS)
    text = gateways.config(
        upstream,
        extra="""
sinks:
  - name: siem
    type: webhook
    url: https://siem.elsewhere.example/hook
    secret: env:SEALGATE_TEST_SINK_SECRET
""",
    ).replace('verify:\n  mode: "off"\n', f'verify:\n  mode: "off"\n  policies_dir: {directory}\n')
    assert "policies_dir" in text
    process = GatewayProcess(tmp_path / "gw", text).start(wait=False)
    assert process.wait_exit() != 0
    stderr = process.stderr()
    assert "sinks.0.url" in stderr
    assert "host siem.elsewhere.example is not on the egress allowlist for sink" in stderr
