"""Binding installed files to the locked wheel hashes through a wheelhouse (real venvs, pip)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from verify import selfcheck, wheelhouse

from .conftest import POLICIES
from .wheels import build_wheel, lock_for, make_venv, pip_install

GOOD = {"goodpkg/__init__.py": b"VALUE = 1\n"}
EVIL = {**GOOD, "goodpkg_init.pth": b"import os\n"}


def wheelhouse_findings(python: Path, lock: Path, wheels: Path) -> dict[str, str]:
    report = selfcheck.run(str(python), [lock], POLICIES, ("wheelhouse",), (), wheels)
    return {f.subject: f.reason for f in report.findings if f.check == "wheelhouse"}


@pytest.fixture
def locked(tmp_path: Path) -> tuple[Path, Path]:
    """The locked good wheel in its own wheelhouse, and the lock that pins it."""
    house = tmp_path / "wheelhouse"
    house.mkdir()
    wheel = build_wheel(house, "goodpkg", "1.0", GOOD)
    return house, lock_for(tmp_path, wheel)


@pytest.mark.slow
def test_a_venv_installed_from_the_locked_wheels_binds_to_them(
    tmp_path: Path, locked: tuple[Path, Path]
) -> None:
    house, lock = locked
    python = make_venv(tmp_path / "venv")
    pip_install(python, *house.glob("*.whl"))
    report = selfcheck.run(str(python), [lock], POLICIES, ("wheelhouse",), (), house)
    assert report.problems == ()
    assert "installed files are those of locked wheel" in report.findings[0].reason


@pytest.mark.slow
def test_a_malicious_release_at_the_locked_version_listing_its_payload_is_caught(
    tmp_path: Path, locked: tuple[Path, Path]
) -> None:
    house, lock = locked
    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    python = make_venv(tmp_path / "venv")
    pip_install(python, build_wheel(evil_dir, "goodpkg", "1.0", EVIL))
    found = wheelhouse_findings(python, lock, house)
    assert "goodpkg_init.pth: installed, not in the locked wheel" in found["goodpkg==1.0"]
    # RECORD alone is satisfied: the release lists its own payload.
    report = selfcheck.run(str(python), [lock], POLICIES, ("record",), ())
    assert report.problems == ()


@pytest.mark.slow
def test_a_wheelhouse_wheel_whose_hash_is_not_locked_is_caught(
    tmp_path: Path, locked: tuple[Path, Path]
) -> None:
    house, lock = locked
    python = make_venv(tmp_path / "venv")
    pip_install(python, *house.glob("*.whl"))
    shutil.rmtree(house)
    house.mkdir()
    build_wheel(house, "goodpkg", "1.0", EVIL)
    found = wheelhouse_findings(python, lock, house)
    assert "is not among the lock's hashes" in found["goodpkg==1.0"]


def test_wheel_data_purelib_maps_to_the_site_root_and_pip_additions_are_ignored() -> None:
    info = "x-1.dist-info"
    wheel = {"x-1.data/purelib/x.py": "sha256=a", f"{info}/METADATA": "sha256=m"}
    installed = {
        "x.py": "sha256=a",
        f"{info}/METADATA": "sha256=m",
        f"{info}/INSTALLER": "sha256=i",
        "__pycache__/x.cpython-311.pyc": "",
    }
    normalized = {k.replace("x-1.data/purelib/", ""): v for k, v in wheel.items()}
    assert wheelhouse.compare(normalized, installed, info) == []
    assert wheelhouse.compare(normalized, {**installed, "x.py": "sha256=b"}, info) == [
        "x.py: installed hash differs from the locked wheel's"
    ]
