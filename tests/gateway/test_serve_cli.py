"""`sealgate serve` refuses to start, with a clear message and exit code 2, on bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def serve(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEALGATE_")}
    # The integrity check runs first (in the launcher) and would refuse this dev venv against
    # the runtime lock with exit 1; these tests are about what comes after it.
    clean["SEALGATE_VERIFY_MODE"] = "off"
    clean.update(env or {})
    command = [sys.executable, "-m", "gateway", "serve", "--data-dir", str(tmp_path / "d"), *args]
    return subprocess.run(
        command, env=clean, capture_output=True, text=True, timeout=60, check=False
    )


def test_serve_without_an_admin_credential_refuses_to_start(tmp_path: Path) -> None:
    result = serve(tmp_path, "--port", "1")
    assert result.returncode == 2
    assert "SEALGATE_ADMIN_KEY" in result.stderr


def test_serve_with_an_invalid_config_names_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("deployments:\n  - model: x\n    provider: mock\n    colour: red\n")
    result = serve(tmp_path, "--config", str(config), env={"SEALGATE_ADMIN_KEY": "sga-" + "x" * 20})
    assert result.returncode == 2
    assert f"{config}: deployments.0.colour (line 4): is not a known key" in result.stderr


def test_serve_with_a_literal_key_in_the_config_refuses_and_does_not_print_it(
    tmp_path: Path,
) -> None:
    literal = "sk-proj-LITERALKEY0123456789abcdef"
    config = tmp_path / "literal.yaml"
    config.write_text(
        "deployments:\n  - model: x\n    provider: openai\n"
        f"    base_url: https://api.openai.com/v1\n    credential: {literal}\n"
    )
    result = serve(tmp_path, "--config", str(config), env={"SEALGATE_ADMIN_KEY": "sga-" + "x" * 20})
    assert result.returncode == 2
    assert "reference" in result.stderr
    assert literal not in result.stderr + result.stdout


@pytest.mark.parametrize("port", ["abc", "-5"])
def test_bad_arguments_exit_2(tmp_path: Path, port: str) -> None:
    result = serve(tmp_path, "--port", port, env={"SEALGATE_ADMIN_KEY": "sga-" + "x" * 20})
    assert result.returncode == 2
