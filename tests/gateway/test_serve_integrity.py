"""`sealgate serve` runs the integrity self-check before it accepts traffic.

The audited interpreter is chosen with SEALGATE_VERIFY_TARGET_PYTHON, so these tests point the
check at throw-away venvs built from hand-made wheels (tests/verify/wheels.py) and never touch
the environment running the tests; the gateway itself still runs from the test interpreter.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.support.gateway_process import GatewayProcess
from tests.verify.wheels import build_wheel, lock_for, make_venv, pip_install, site_packages

pytestmark = pytest.mark.slow

GOOD = {"goodpkg/__init__.py": b"VALUE = 1\n"}
PROJECT = {"gateway_stub/__init__.py": b""}  # stands in for the project's own distribution


def config(lock: Path, mode: str = "enforce", interval: float = 300) -> str:
    return f"""
deployments:
  - model: mock-gpt
    provider: mock
verify:
  mode: {mode}
  interval_seconds: {interval}
  locks: ["{lock}"]
"""


def target_venv(tmp_path: Path, extra: dict[str, bytes] | None = None) -> tuple[Path, Path]:
    """A venv holding goodpkg (locked) and a stand-in `sealgate` distribution (the project)."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    good = build_wheel(wheels, "goodpkg", "1.0", {**GOOD, **(extra or {})})
    project = build_wheel(wheels, "sealgate", "0.1.0", PROJECT)
    python = make_venv(tmp_path / "venv")
    pip_install(python, good, project)
    return python, lock_for(tmp_path, good)


def start(tmp_path: Path, cfg: str, python: Path) -> GatewayProcess:
    env = {"SEALGATE_VERIFY_TARGET_PYTHON": str(python)}
    return GatewayProcess(tmp_path / "gw", cfg, env=env)


def test_the_test_environment_itself_starts_clean_under_enforce(tmp_path: Path) -> None:
    cfg = config(REPO / "requirements-dev.lock").replace(
        f'locks: ["{REPO / "requirements-dev.lock"}"]',
        f'locks: ["{REPO / "requirements-dev.lock"}", "{REPO / "requirements-build.lock"}"]',
    )
    gateway = GatewayProcess(tmp_path / "gw", cfg).start()
    try:
        ready = httpx.get(gateway.url + "/health/ready", timeout=10).json()
        assert ready["checks"]["integrity"]["clean"] is True
        assert "sealgate_integrity_clean 1" in gateway.admin("GET", "/metrics").text
    finally:
        gateway.stop()


def test_serve_in_enforce_mode_refuses_an_init_pth_and_never_runs_it(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    payload = f"import pathlib; pathlib.Path({str(marker)!r}).write_text('pwned')\n".encode()
    python, lock = target_venv(tmp_path, {"goodpkg_init.pth": payload})
    gateway = start(tmp_path, config(lock), python).start(wait=False)
    assert gateway.wait_exit() == 1
    assert "goodpkg_init.pth" in gateway.stderr()
    assert "refusing to start" in gateway.stderr()
    assert not marker.exists()  # the audit ran the target with -I -S
    with pytest.raises(httpx.TransportError):
        httpx.get(gateway.url + "/health/live", timeout=2)


def test_serve_in_warn_mode_starts_and_reports_the_findings(tmp_path: Path) -> None:
    python, lock = target_venv(tmp_path, {"goodpkg_init.pth": b"import os\n"})
    gateway = start(tmp_path, config(lock, mode="warn"), python).start()
    try:
        ready = httpx.get(gateway.url + "/health/ready", timeout=10)
        integrity = ready.json()["checks"]["integrity"]
        assert ready.status_code == 200
        assert integrity["clean"] is False and integrity["findings"] >= 1
        assert "integrity finding" in gateway.stderr()
    finally:
        gateway.stop()


def test_a_pth_appearing_after_start_up_raises_the_alarm_and_readiness_falls(
    tmp_path: Path,
) -> None:
    python, lock = target_venv(tmp_path)
    gateway = start(tmp_path, config(lock, interval=0.5), python).start()
    try:
        assert httpx.get(gateway.url + "/health/ready", timeout=10).status_code == 200
        (site_packages(python) / "zz_late.pth").write_text("import os\n")
        deadline = time.monotonic() + 20
        status = 200
        while status == 200 and time.monotonic() < deadline:
            time.sleep(0.25)
            status = httpx.get(gateway.url + "/health/ready", timeout=10).status_code
        assert status == 503
        assert "integrity alarm" in gateway.stderr()
        assert "sealgate_integrity_clean 0" in gateway.admin("GET", "/metrics").text
    finally:
        gateway.stop()
