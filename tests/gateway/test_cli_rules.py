"""The command line keeps one set of rules wherever it is run from: usage lines name the command
a user typed (``sealgate verify``, not ``verify``), and ``sealgate verify`` finds the policies by
the rule ``sealgate serve`` uses (policies/ beside the project), not by the working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.integrity import policies_dir
from gateway.serve import parse_config
from tests.conftest import REPO
from verify.policies import default_dir


def sealgate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("command", "usage"), [("verify", "sealgate verify"), ("sbom", "sealgate sbom")]
)
def test_usage_lines_name_the_sealgate_subcommand(tmp_path: Path, command: str, usage: str) -> None:
    done = sealgate(command, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {usage} ")


def test_verify_outside_the_repository_finds_the_policies_serve_would_use(
    tmp_path: Path,
) -> None:
    done = sealgate("verify", "pth", "--lock", str(REPO / "requirements-dev.lock"), cwd=tmp_path)
    assert "cannot read" not in done.stderr and "policies" not in done.stderr, done.stderr
    assert done.returncode in (0, 1), done.stderr  # a verdict, not a usage or environment error


def test_serve_and_verify_share_one_default_policy_directory() -> None:
    config = parse_config("deployments:\n  - model: m\n    provider: mock\n", "t")
    assert policies_dir(config.verify) == default_dir() == REPO / "policies"
