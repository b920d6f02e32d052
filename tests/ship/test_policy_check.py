"""``sealgate policy check`` passes on the shipped policies and rejects each malformed policy
with a message naming the file, the line and the key."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.policy_files import check

REPO = Path(__file__).resolve().parents[2]
SHA = "a" * 64


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(REPO / "policies", target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_the_shipped_policies_pass() -> None:
    assert check(REPO / "policies") == []


def test_an_unknown_key_in_the_pth_allowlist_names_file_line_and_key(policies: Path) -> None:
    path = policies / "pth-allowlist.yaml"
    edit(path, "    owner: sealgate\n", "    owner: sealgate\n    colour: red\n")
    [problem] = check(policies)
    assert problem.file == str(path)
    assert problem.key == "pth[1].colour"
    assert problem.line == line_of(path, "colour: red")
    assert "unknown key 'colour'" in str(problem)


def test_a_bad_sha256_in_the_pth_allowlist_names_its_line(policies: Path) -> None:
    path = policies / "pth-allowlist.yaml"
    edit(path, "    sha256: 2638ce9e", "    sha256: XYZ2638ce9e")
    [problem] = check(policies)
    assert (problem.key, problem.line) == ("pth[0].sha256", line_of(path, "XYZ2638ce9e"))
    assert "sha256" in problem.message


def test_an_egress_host_with_a_path_names_the_provider_s_hosts_line(policies: Path) -> None:
    path = policies / "egress.yaml"
    edit(path, "      - api.anthropic.com\n", "      - api.anthropic.com/v1\n")
    [problem] = check(policies)
    assert problem.key == "providers.anthropic.hosts"
    assert problem.line == line_of(path, "anthropic:") + 1
    assert "'api.anthropic.com/v1' is not a host name" in problem.message


def test_a_signer_without_an_issuer_names_the_signer(policies: Path) -> None:
    path = policies / "trusted-signers.yaml"
    edit(
        path,
        "signers: []\n",
        "signers:\n  - name: release\n    identity: x\n    trusted_root: r.json\n",
    )
    [problem] = check(policies)
    assert problem.key == "signers[0]"
    assert problem.line == line_of(path, "- name: release")
    assert "missing key 'issuer'" in problem.message


def test_invalid_yaml_names_the_line_of_the_syntax_error(policies: Path) -> None:
    path = policies / "egress.yaml"
    edit(path, "  openai:\n", "  openai: [\n")
    [problem] = check(policies)
    assert problem.key == "(file)" and "not valid YAML" in problem.message
    assert problem.line is not None and problem.line >= line_of(path, "openai: [")


def test_an_unknown_policy_file_and_a_missing_one_are_both_problems(policies: Path) -> None:
    (policies / "egress.yaml").rename(policies / "egres.yaml")
    messages = sorted(str(p) for p in check(policies))
    assert any("egres.yaml: (file): is not a known policy file" in m for m in messages)
    assert any("egress.yaml: (file): is missing" in m for m in messages)


def test_sealgate_policy_check_exits_1_with_the_problem_on_stdout_and_the_count_on_stderr(
    policies: Path,
) -> None:
    edit(policies / "egress.yaml", "version: 1", "version: 2")
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "policy", "check", "--policies", str(policies)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    where = f"{policies / 'egress.yaml'}:{line_of(policies / 'egress.yaml', 'version: 2')}"
    assert done.stdout == f"{where}: version: expected 1\n"
    assert done.stderr.strip().endswith("policy check: 1 problem(s)")
