"""The CI and release workflows pass zizmor (pedantic persona) and pin every action by full commit
SHA and every container image by digest; the release ends by checking what PyPI serves."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
ZIZMOR = Path(sys.executable).parent / "zizmor"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def _uses(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [str(v) for k, v in node.items() if k == "uses"]
        return found + [u for v in node.values() for u in _uses(v)]
    if isinstance(node, list):
        return [u for v in node for u in _uses(v)]
    return []


def test_zizmor_reports_no_findings_on_the_workflows_even_as_a_pedantic_auditor() -> None:
    done = subprocess.run(
        [str(ZIZMOR), "--offline", "--no-progress", "--persona", "pedantic", str(REPO / ".github")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings to report" in done.stdout + done.stderr


def test_every_action_is_pinned_by_a_full_commit_sha_with_a_version_comment() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"ci.yml", "release.yml"}
    for path in files:
        uses = _uses(yaml.safe_load(path.read_text()))
        assert uses, path
        for use in uses:
            assert PINNED.match(use), f"{path.name}: {use} is not pinned by a 40-hex commit SHA"
        for line in path.read_text().splitlines():
            if "uses:" in line:
                assert re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line


def test_every_workflow_starts_from_no_permissions_and_checkout_keeps_no_credentials() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        doc = yaml.safe_load(path.read_text())
        assert doc["permissions"] == {}, path.name
        for name, job in doc["jobs"].items():
            assert "permissions" in job, f"{path.name}: job {name} sets no permissions"
            for step in job["steps"]:
                if str(step.get("uses", "")).startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, f"{path.name}: {name}"


def test_the_pin_pattern_refuses_tags_and_short_shas() -> None:
    assert not PINNED.match("actions/checkout@v4")
    assert not PINNED.match("actions/checkout@3d3c42e")
    assert PINNED.match("actions/checkout@" + "0" * 40)


def test_every_service_container_is_pinned_by_digest() -> None:
    images = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            images += [s["image"] for s in job.get("services", {}).values()]
            if "container" in job:
                images.append(job["container"] if isinstance(job["container"], str) else "")
    assert images, "the tests job runs PostgreSQL and Redis as services"
    for image in images:
        assert re.search(r"@sha256:[0-9a-f]{64}$", image), image


def test_the_tests_job_runs_on_exactly_the_python_versions_the_project_declares() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    version = re.compile(r"Programming Language :: Python :: (3\.\d+)")
    declared = [m[1] for c in project["classifiers"] if (m := version.fullmatch(c))]
    tests = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())["jobs"]["tests"]
    assert tests["strategy"]["matrix"]["python"] == declared
    assert tests["strategy"]["fail-fast"] is False  # one version failing still reports the others
    assert project["requires-python"] == f">={declared[0]}"
    asked = [
        step["with"]["python-version"]
        for step in tests["steps"]
        if str(step.get("uses", "")).startswith("actions/setup-python@")
    ]
    assert asked == ["${{ matrix.python }}"]


def test_the_release_checks_the_wheel_pypi_serves_against_the_signed_build_after_publishing() -> (
    None
):
    jobs = yaml.safe_load((WORKFLOWS / "release.yml").read_text())["jobs"]
    released = jobs["released"]
    assert {"pypi", "sign"} <= set(released["needs"])
    assert released["permissions"] == {"contents": "read"}
    script = "\n".join(str(s.get("run", "")) for s in released["steps"])
    assert "signed/SHA256SUMS" in script and "--require-hashes" in script
    assert "sigstore verify identity" in script and "release.yml@${GITHUB_REF}" in script
    assert "verify env" in script and "sbom verify" in script
    assert "${{" not in script  # no expression expanded into the shell (template injection)
