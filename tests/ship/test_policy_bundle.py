"""A signed policy bundle: policies changed without a valid signature are refused."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import REPO
from tests.support.gateway_process import GatewayProcess
from tests.support.keys import write_keypair
from verify import policy_bundle
from verify.findings import Status


def keypair(where: Path, name: str = "policy") -> tuple[Path, Path]:
    return write_keypair(where / f"{name}.pem", where / f"{name}.pub.pem")


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path]:
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    priv, pub = keypair(tmp_path)
    policy_bundle.sign(policies, priv.read_bytes())
    return policies, pub


def statuses(policies: Path, pub: Path) -> dict[str, str]:
    return {
        f.subject: f.reason
        for f in policy_bundle.check(policies, pub.read_bytes())
        if f.status is not Status.OK
    }


def test_a_freshly_signed_bundle_verifies(signed: tuple[Path, Path]) -> None:
    policies, pub = signed
    assert statuses(policies, pub) == {}


def test_a_changed_policy_is_refused(signed: tuple[Path, Path]) -> None:
    policies, pub = signed
    with (policies / "egress.yaml").open("a") as handle:
        handle.write("# widened\n")
    assert statuses(policies, pub) == {"egress.yaml": "changed since the bundle was signed"}


def test_an_added_or_removed_policy_is_refused(signed: tuple[Path, Path]) -> None:
    policies, pub = signed
    (policies / "extra.yaml").write_text("a: 1\n")
    (policies / "pth-allowlist.yaml").unlink()
    found = statuses(policies, pub)
    assert found["extra.yaml"].startswith("not in the signed manifest")
    assert found["pth-allowlist.yaml"] == "listed in the signed manifest but missing"


def test_a_file_of_any_name_added_after_signing_is_refused(signed: tuple[Path, Path]) -> None:
    policies, pub = signed
    (policies / "release.pub.pem").write_text("an attacker's public key\n")
    (policies / "roots").mkdir()
    (policies / "roots" / "trusted_root").write_text("{}\n")
    found = statuses(policies, pub)
    assert set(found) == {"release.pub.pem", "roots/trusted_root"}
    assert all(r.startswith("not in the signed manifest") for r in found.values())


def test_a_signed_manifest_of_the_wrong_shape_is_refused_not_crashed_on(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    priv, pub = keypair(tmp_path)
    for body in (b'{"files": ["egress.yaml"]}', b'{"files": {"egress.yaml": 1}}', b"[]"):
        key = serialization.load_pem_private_key(priv.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        signature = key.sign(body, ec.ECDSA(hashes.SHA256()))
        (policies / policy_bundle.MANIFEST).write_bytes(body)
        (policies / policy_bundle.SIGNATURE).write_bytes(base64.b64encode(signature))
        assert statuses(policies, pub) == {
            "MANIFEST.json": "the signed manifest is not a policy manifest"
        }


def test_a_bundle_signed_with_another_key_is_refused(
    signed: tuple[Path, Path], tmp_path: Path
) -> None:
    policies, _ = signed
    _, other = keypair(tmp_path, "other")
    assert statuses(policies, other) == {
        "MANIFEST.json": "the manifest's signature does not verify with the pinned key"
    }


def test_a_manifest_edited_to_match_a_changed_policy_is_refused(signed: tuple[Path, Path]) -> None:
    policies, pub = signed
    (policies / "egress.yaml").write_text("version: 1\nproviders: {}\n")
    fresh = policy_bundle.manifest_bytes(policies)  # the attacker recomputes the hashes ...
    (policies / policy_bundle.MANIFEST).write_bytes(fresh)  # ... but cannot re-sign
    assert "MANIFEST.json" in statuses(policies, pub)


def test_the_cli_exits_0_signed_1_tampered_2_without_a_key(signed: tuple[Path, Path]) -> None:
    policies, pub = signed
    assert policy_bundle.main(["check", "--policies", str(policies), "--key", str(pub)]) == 0
    (policies / "egress.yaml").write_text("version: 1\nproviders: {}\n")
    assert policy_bundle.main(["check", "--policies", str(policies), "--key", str(pub)]) == 1
    assert policy_bundle.main(["check", "--policies", str(policies)]) == 2


def config(policies: Path, pub: Path) -> str:
    locks = f'["{REPO / "requirements-dev.lock"}", "{REPO / "requirements-build.lock"}"]'
    return f"""
deployments:
  - model: mock-gpt
    provider: mock
verify:
  mode: enforce
  locks: {locks}
  policies_dir: "{policies}"
  policy_key: "{pub}"
"""


@pytest.mark.slow
def test_serve_in_enforce_mode_starts_on_a_signed_bundle_and_refuses_a_tampered_one(
    signed: tuple[Path, Path], tmp_path: Path
) -> None:
    policies, pub = signed
    good = GatewayProcess(tmp_path / "good", config(policies, pub)).start()
    try:
        ready = httpx.get(good.url + "/health/ready", timeout=10).json()
        assert ready["checks"]["policies"] == {"ok": True, "signed": True}
    finally:
        good.stop()
    with (policies / "egress.yaml").open("a") as handle:
        handle.write("  evil:\n    hosts: [attacker.example]\n")
    bad = GatewayProcess(tmp_path / "bad", config(policies, pub)).start(wait=False)
    assert bad.wait_exit() == 1
    assert "policy bundle does not verify" in bad.stderr()
    assert "egress.yaml" in bad.stderr()
