"""`sealgate serve` refuses to start, with a clear message and exit code 2, on bad input."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from tests.support.gateway_process import GatewayProcess, free_port

ADMIN = "sga-" + "x" * 20


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


MOCK_CONFIG = 'deployments:\n  - model: m\n    provider: mock\nverify:\n  mode: "off"\n'


def test_a_taken_port_is_refused_with_exit_2_and_serving_is_never_announced(
    tmp_path: Path,
) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(MOCK_CONFIG)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = serve(
            tmp_path, "--config", str(config), "--port", port, env={"SEALGATE_ADMIN_KEY": ADMIN}
        )
    assert result.returncode == 2
    assert f"sealgate: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Sealgate serving on" not in result.stderr


def test_serving_is_announced_once_the_port_is_bound(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path / "gw", MOCK_CONFIG).start()
    try:
        assert f"Sealgate serving on http://127.0.0.1:{gateway.port}/v1" in gateway.stderr()
    finally:
        gateway.stop()


def test_a_second_gateway_on_the_same_data_directory_is_refused_and_the_first_serves_on(
    tmp_path: Path,
) -> None:
    first = GatewayProcess(tmp_path / "gw", MOCK_CONFIG).start()
    try:
        assert first.process is not None
        config = tmp_path / "gw.yaml"
        config.write_text(MOCK_CONFIG)
        command = [sys.executable, "-m", "gateway", "serve", "--config", str(config)]
        command += ["--data-dir", str(first.data_dir), "--port", str(free_port())]
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SEALGATE_")}
        second = subprocess.run(
            command,
            env={**clean, "SEALGATE_ADMIN_KEY": ADMIN},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 2
        assert f"in use by another Sealgate process (pid {first.process.pid})" in second.stderr
        assert httpx.get(first.url + "/health/live", timeout=5).status_code == 200
    finally:
        first.stop()


def test_version_prints_the_installed_distributions_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"sealgate {metadata.version('sealgate')}"
