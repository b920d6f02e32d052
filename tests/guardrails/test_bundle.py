"""Guardrail policies shipped in the policy bundle: ``policies/guardrails.yaml`` holds the same
keys as the config's section, the signed manifest covers it like every file there, and a running
gateway serves under it."""

from __future__ import annotations

import shutil
from pathlib import Path

import openai
import pytest

from gateway.config import guardrails_section
from gateway.errors import ConfigError
from gateway.policy_files import check
from gateway.serve import parse_config
from tests.conftest import REPO
from tests.support.gateway_process import GatewayProcess
from tests.support.keys import write_keypair
from verify import policy_bundle
from verify.findings import Status

BUNDLED = """default: shipped
policies:
  shipped:
    detectors: {personal: mask}
"""


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    shutil.copytree(REPO / "policies", directory)
    (directory / "guardrails.yaml").write_text(BUNDLED)
    return directory


def config(policies: Path, extra: str = "") -> str:
    return (
        "deployments:\n  - {model: mock-gpt, provider: mock}\n"
        f'verify:\n  mode: "off"\n  policies_dir: "{policies}"\n{extra}'
    )


def test_a_running_gateway_serves_under_the_bundles_guardrail_policy(
    policies: Path, tmp_path: Path
) -> None:
    gateway = GatewayProcess(tmp_path / "gw", config(policies)).start()
    try:
        key = gateway.create_key(["mock-gpt"])["key"]
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
        client.chat.completions.create(
            model="mock-gpt", messages=[{"role": "user", "content": "mail a.b@example.com"}]
        )
        assert "guardrail policy shipped, request stage: email=1" in gateway.stderr()
    finally:
        gateway.stop()


def test_the_signed_manifest_covers_the_guardrail_policies(policies: Path, tmp_path: Path) -> None:
    private, public = write_keypair(tmp_path / "p.pem", tmp_path / "p.pub.pem")
    policy_bundle.sign(policies, private.read_bytes())
    with (policies / "guardrails.yaml").open("a") as handle:
        handle.write("    stages: []\n")  # turned off without a new signature
    found = {
        f.subject: f.reason
        for f in policy_bundle.check(policies, public.read_bytes())
        if f.status is not Status.OK
    }
    assert found == {"guardrails.yaml": "changed since the bundle was signed"}


def test_policies_in_both_the_config_and_the_bundle_are_refused(policies: Path) -> None:
    both = parse_config(config(policies, "guardrails: {policies: {p: {}}}\n"), "gw.yaml")
    with pytest.raises(ConfigError, match="keep the policies in one of the two"):
        guardrails_section(both, policies)


def test_a_bad_bundled_policy_is_refused_with_its_file_key_and_line(policies: Path) -> None:
    (policies / "guardrails.yaml").write_text(BUNDLED + "    patterns: [{name: b, regex: '\\1'}]\n")
    with pytest.raises(ConfigError) as caught:
        guardrails_section(parse_config(config(policies), "gw.yaml"), policies)
    assert f"{policies / 'guardrails.yaml'}: policies.shipped.patterns.0.regex (line 5)" in str(
        caught.value
    )


def test_sealgate_policy_check_validates_the_bundled_guardrails_and_does_not_require_them(
    policies: Path,
) -> None:
    assert check(policies) == []
    (policies / "guardrails.yaml").write_text(BUNDLED + "    phone_regions: [usa]\n")
    (problem,) = check(policies)
    assert (problem.line, problem.key) == (5, "policies.shipped.phone_regions.0")
    (policies / "guardrails.yaml").unlink()
    assert check(policies) == []
