"""The SBOM: deterministic, schema-valid CycloneDX 1.6 of the runtime lock; ``verify`` catches a
missing, an extra and a changed distribution, and a wheel whose hash the SBOM does not list."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cyclonedx.schema
import jsonschema
import pytest
from referencing import Registry, Resource

from tests.verify.factsbuild import MARKERS, SITE
from verify import sbom
from verify.facts import Dist, EnvFacts
from verify.findings import Status
from verify.lockfile import parse

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"
PYPROJECT = REPO / "pyproject.toml"
COMMITTED = REPO / "sbom" / "sealgate.cdx.json"
SCHEMAS = Path(cyclonedx.schema.__file__).parent / "_res"
BASE = "http://cyclonedx.org/schema/"

SMALL_LOCK = """\
alpha==1.0 \\
    --hash=sha256:{a}
beta==2.0 ; sys_platform == 'win32' \\
    --hash=sha256:{b}
gamma==3.0 \\
    --hash=sha256:{c} \\
    --hash=sha256:{d}
""".format(a="a" * 64, b="b" * 64, c="c" * 64, d="d" * 64)


def document(lock: str = SMALL_LOCK) -> dict[str, Any]:
    return sbom.build(parse(lock, "test.lock"), lock.encode(), "9.9.9")


def facts(**installed: str) -> EnvFacts:
    dists = tuple(
        Dist(SITE, f"{name}-{version}.dist-info", name, version, None)
        for name, version in installed.items()
    )
    return EnvFacts("/venv/bin/python", "/venv", (SITE,), MARKERS, (), (), dists, {})


def problems(doc: dict[str, Any], env: EnvFacts, wheelhouse: Path | None = None) -> list[str]:
    return [f.reason for f in sbom.compare(doc, env, wheelhouse=wheelhouse) if not f.passed]


def test_the_committed_sbom_is_what_the_lock_generates_byte_for_byte() -> None:
    generated = sbom.generate(LOCK, REPO / "pyproject.toml")
    assert generated == COMMITTED.read_text(encoding="utf-8")
    assert generated == sbom.generate(LOCK, REPO / "pyproject.toml")
    assert "timestamp" not in generated


def test_the_sbom_validates_against_the_cyclonedx_1_6_schema() -> None:
    def resource(name: str) -> Resource[Any]:
        return Resource.from_contents(json.loads((SCHEMAS / name).read_text()))

    registry: Registry[Any] = Registry().with_resources(
        [
            (BASE + "spdx.SNAPSHOT.schema.json", resource("spdx.SNAPSHOT.schema.json")),
            (BASE + "jsf-0.82.SNAPSHOT.schema.json", resource("jsf-0.82.SNAPSHOT.schema.json")),
        ]
    )
    schema = json.loads((SCHEMAS / "bom-1.6.SNAPSHOT.schema.json").read_text())
    validator = jsonschema.Draft7Validator(schema, registry=registry)
    validator.validate(json.loads(COMMITTED.read_text()))
    broken = json.loads(COMMITTED.read_text())
    broken["components"][0]["hashes"][0]["alg"] = "SHA-257"
    assert list(validator.iter_errors(broken))


def test_every_runtime_pin_is_a_component_with_its_purl_and_every_locked_hash() -> None:
    doc = json.loads(COMMITTED.read_text())
    by_ref = {c["bom-ref"]: c for c in doc["components"]}
    for pin in parse(LOCK.read_text(), str(LOCK)):
        component = by_ref[f"pkg:pypi/{pin.name}@{pin.version}"]
        assert component["purl"] == component["bom-ref"]
        assert pin.hashes <= {h["content"] for h in component["hashes"]}
    assert doc["specVersion"] == "1.6"


def test_the_serial_number_is_a_uuid_derived_from_the_lock_s_sha256() -> None:
    doc = document()
    assert doc["serialNumber"] == document()["serialNumber"]
    assert doc["serialNumber"].startswith("urn:uuid:")
    assert doc["serialNumber"] != document(SMALL_LOCK.replace("1.0", "1.1"))["serialNumber"]
    lock_sha = hashlib.sha256(SMALL_LOCK.encode()).hexdigest()
    assert doc["metadata"]["properties"] == [{"name": sbom.LOCK_PROPERTY, "value": lock_sha}]


def test_an_environment_equal_to_the_sbom_is_clean_and_other_platforms_pins_are_not_expected() -> (
    None
):
    assert problems(document(), facts(alpha="1.0", gamma="3.0", sealgate="0.1.0")) == []


def test_verify_reports_a_missing_distribution() -> None:
    assert problems(document(), facts(alpha="1.0", sealgate="0.1.0")) == [
        "missing: gamma 3.0 is in the SBOM but not installed"
    ]


def test_verify_reports_an_extra_distribution() -> None:
    env = facts(alpha="1.0", gamma="3.0", sealgate="0.1.0", evil="6.6.6")
    assert problems(document(), env) == ["extra: evil 6.6.6 is installed but not in the SBOM"]


def test_verify_reports_a_changed_version() -> None:
    env = facts(alpha="1.0", gamma="3.1", sealgate="0.1.0")
    assert problems(document(), env) == ["version: installed 3.1, the SBOM lists 3.0"]


def test_with_a_wheelhouse_a_wheel_whose_sha256_the_sbom_does_not_list_is_critical(
    tmp_path: Path,
) -> None:
    wheel = tmp_path / "alpha-1.0-py3-none-any.whl"
    wheel.write_bytes(b"a same-version release with a payload")
    lock = SMALL_LOCK.replace("a" * 64, hashlib.sha256(b"the locked wheel").hexdigest())
    results = sbom.compare(document(lock), facts(alpha="1.0", gamma="3.0"), (), tmp_path)
    alpha = next(f for f in results if f.subject == "alpha")
    assert alpha.status is Status.FINDING and alpha.severity == "critical"
    wheel.write_bytes(b"the locked wheel")
    results = sbom.compare(document(lock), facts(alpha="1.0", gamma="3.0"), (), tmp_path)
    assert next(f for f in results if f.subject == "alpha").passed


def test_generate_check_fails_on_a_stale_sbom_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "bom.json"
    args = ["generate", "--lock", str(LOCK), "--pyproject", str(REPO / "pyproject.toml")]
    assert sbom.main([*args, "--out", str(out), "--check"]) == 1
    assert not out.exists()
    assert sbom.main([*args, "--out", str(out)]) == 0
    assert sbom.main([*args, "--out", str(out), "--check"]) == 0
    out.write_text(out.read_text().replace("aiohttp", "aiohttq"))
    assert sbom.main([*args, "--out", str(out), "--check"]) == 1


def test_verify_of_the_dev_environment_reports_the_test_tools_as_extra() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "verify.sbom",
            "verify",
            "--sbom",
            str(COMMITTED),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 1, done.stderr
    reasons = [f["reason"] for f in json.loads(done.stdout)["findings"]]
    assert any(r.startswith("extra: pytest ") for r in reasons)
    assert not any(r.startswith(("missing:", "version:")) for r in reasons)


def test_sealgate_sbom_delegates_to_the_sbom_command(tmp_path: Path) -> None:
    from gateway.cli import main

    out = tmp_path / "bom.json"
    assert (
        main(
            [
                "sbom",
                "generate",
                "--lock",
                str(LOCK),
                "--pyproject",
                str(PYPROJECT),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert out.read_text() == COMMITTED.read_text()


def test_verify_sbom_never_imports_gateway() -> None:
    code = "import sys, verify.sbom; sys.exit('gateway' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


@pytest.mark.parametrize("text", ["not json", '{"bomFormat": "SPDX"}'])
def test_verify_refuses_a_file_that_is_not_a_cyclonedx_sbom_with_exit_2(
    tmp_path: Path, text: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    assert sbom.main(["verify", "--sbom", str(bad)]) == 2
