"""The attack corpus: each case is a real throw-away venv with pip-installed hand-built wheels.

PYSEC-2026-2 shipped ``litellm_init.pth`` (an ``import`` line running a stealer on every start)
and listed it in the release's own RECORD. Here the payload only writes a marker file inside
tmp_path, which also proves the audit itself (``-I -S``) never runs it.
For ``sealgate serve`` the lead asserts the same through the CLI: in enforce mode, with such a
venv as the target, serve exits non-zero before binding its port.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from verify import selfcheck
from verify.findings import Report, Severity, Status

from .conftest import POLICIES
from .wheels import build_wheel, lock_for, make_venv, pip_install, site_packages

pytestmark = pytest.mark.slow

GOOD = {"goodpkg/__init__.py": b"VALUE = 1\n", "goodpkg/core.py": b"def f():\n    return 1\n"}


def payload(marker: Path) -> bytes:
    return f"import pathlib; pathlib.Path({str(marker)!r}).write_text('pwned')\n".encode()


def audit(python: Path, lock: Path) -> Report:
    return selfcheck.run(str(python), [lock], POLICIES, project=())


def problems(report: Report, check: str) -> dict[str, str]:
    return {f.subject: f.reason for f in report.problems if f.check == check}


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    return make_venv(tmp_path / "venv")


def test_a_clean_throwaway_venv_is_clean(tmp_path: Path, venv: Path) -> None:
    wheel = build_wheel(tmp_path, "goodpkg", "1.0", GOOD)
    pip_install(venv, wheel)
    report = audit(venv, lock_for(tmp_path, wheel))
    assert report.problems == ()


@pytest.mark.parametrize("in_record", [False, True], ids=["unlisted", "listed-in-own-RECORD"])
def test_an_init_pth_with_an_import_payload_is_detected_and_the_audit_does_not_run_it(
    tmp_path: Path, venv: Path, in_record: bool
) -> None:
    marker = tmp_path / "marker"
    files = {**GOOD, "goodpkg_init.pth": payload(marker)}
    omit = () if in_record else ("goodpkg_init.pth",)
    wheel = build_wheel(tmp_path, "goodpkg", "1.0", files, omit_from_record=omit)
    pip_install(venv, wheel)
    report = audit(venv, lock_for(tmp_path, wheel))
    assert not marker.exists(), "the audit must not execute the .pth it inspects"
    [hit] = [f for f in report.problems if f.subject.endswith("goodpkg_init.pth")]
    assert hit.check == "pth" and hit.severity is Severity.CRITICAL
    assert "executes code" in hit.reason
    assert not report.clean  # what `sealgate serve` in enforce mode refuses to start on
    # The payload is real: a normal start of the target runs it.
    subprocess.run([str(venv), "-c", "pass"], check=True)
    assert marker.read_text() == "pwned"


def test_a_modified_py_in_an_installed_distribution_is_detected(tmp_path: Path, venv: Path) -> None:
    wheel = build_wheel(tmp_path, "goodpkg", "1.0", GOOD)
    pip_install(venv, wheel)
    target = site_packages(venv) / "goodpkg" / "core.py"
    target.write_text("import os\ndef f():\n    return os.environ\n")
    found = problems(audit(venv, lock_for(tmp_path, wheel)), "record")
    assert "modified after install" in found[str(target)]


def test_an_unowned_module_dropped_into_site_packages_is_detected(
    tmp_path: Path, venv: Path
) -> None:
    wheel = build_wheel(tmp_path, "goodpkg", "1.0", GOOD)
    pip_install(venv, wheel)
    dropped = site_packages(venv) / "helper.py"
    dropped.write_text("import socket\n")
    found = problems(audit(venv, lock_for(tmp_path, wheel)), "record")
    assert "no distribution's RECORD owns" in found[str(dropped)]


def test_an_injected_sitecustomize_is_detected(tmp_path: Path, venv: Path) -> None:
    wheel = build_wheel(tmp_path, "goodpkg", "1.0", GOOD)
    pip_install(venv, wheel)
    hook = site_packages(venv) / "sitecustomize.py"
    hook.write_text("import os\n")
    found = problems(audit(venv, lock_for(tmp_path, wheel)), "pth")
    assert "sitecustomize runs on every interpreter start" in found[str(hook)]


def test_a_distribution_not_in_the_lock_and_one_at_the_wrong_version_are_detected(
    tmp_path: Path, venv: Path
) -> None:
    good = build_wheel(tmp_path, "goodpkg", "1.0", GOOD)
    locked_other = build_wheel(tmp_path, "otherpkg", "1.0", {"otherpkg/__init__.py": b""})
    lock = lock_for(tmp_path, good, locked_other)
    newer = tmp_path / "newer"
    newer.mkdir()
    installed_other = build_wheel(newer, "otherpkg", "2.0", {"otherpkg/__init__.py": b"X = 2\n"})
    extra = build_wheel(newer, "extrapkg", "0.1", {"extrapkg/__init__.py": b""})
    pip_install(venv, good, installed_other, extra)
    found = problems(audit(venv, lock), "lock")
    assert found == {
        "extrapkg": "extrapkg 0.1 is not in the lock",
        "otherpkg": "installed 2.0, lock pins 1.0",
    }
    assert all(f.status is Status.FINDING for f in audit(venv, lock).problems if f.check == "lock")


def test_the_periodic_recheck_reports_a_pth_and_a_changed_file_that_appear_after_start(
    tmp_path: Path, venv: Path
) -> None:
    wheel = build_wheel(tmp_path, "goodpkg", "1.0", GOOD)
    pip_install(venv, wheel)
    baseline = selfcheck.Baseline.capture(str(venv))
    assert baseline.changes() == []
    site = site_packages(venv)
    (site / "late_init.pth").write_text("import os\n")
    (site / "goodpkg" / "core.py").write_text("X = 'changed'\n")
    found = {f.subject: f.reason for f in baseline.changes()}
    assert found == {
        str(site / "late_init.pth"): "new or changed .pth file",
        str(site / "goodpkg" / "core.py"): "file changed after start-up",
    }
