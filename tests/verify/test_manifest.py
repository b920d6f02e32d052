"""The signed install manifest: made with the wheelhouse at build time, checked without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.keys import write_keypair
from verify import cli, selfcheck

from .conftest import POLICIES
from .wheels import build_wheel, lock_for, make_venv, pip_install

pytestmark = pytest.mark.slow
GOOD = {"goodpkg/__init__.py": b"VALUE = 1\n"}


def keypair(where: Path) -> tuple[Path, Path]:
    return write_keypair(where / "manifest.key", where / "manifest.pub")


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """A venv installed from a locked wheelhouse: (python, lock, wheelhouse, keys dir)."""
    house = tmp_path / "wheelhouse"
    house.mkdir()
    wheel = build_wheel(house, "goodpkg", "1.0", GOOD)
    python = make_venv(tmp_path / "venv")
    pip_install(python, wheel)
    return python, lock_for(tmp_path, wheel), house, tmp_path


def create(python: Path, lock: Path, house: Path, key: Path, out: Path) -> int:
    return cli.main(
        [
            "manifest",
            "create",
            "--target-python",
            str(python),
            "--lock",
            str(lock),
            "--wheelhouse",
            str(house),
            "--key",
            str(key),
            "--out",
            str(out),
            "--project",
            "",
        ]
    )


def manifest_results(python: Path, out: Path, pub: Path) -> list[str]:
    report = selfcheck.run(str(python), [], POLICIES, (), (), signed_manifest=(out, pub))
    return [f"{f.status.value}: {f.subject}: {f.reason}" for f in report.findings]


def test_a_manifest_made_at_build_time_checks_clean_at_start(
    built: tuple[Path, Path, Path, Path],
) -> None:
    python, lock, house, tmp = built
    priv, pub = keypair(tmp)
    assert create(python, lock, house, priv, tmp / "manifest.json") == 0
    assert manifest_results(python, tmp / "manifest.json", pub) == [
        "ok: goodpkg==1.0: bound to locked wheel goodpkg-1.0-py3-none-any.whl"
    ]


def test_a_same_version_release_installed_after_the_manifest_is_caught(
    built: tuple[Path, Path, Path, Path],
) -> None:
    python, lock, house, tmp = built
    priv, pub = keypair(tmp)
    assert create(python, lock, house, priv, tmp / "manifest.json") == 0
    evil = tmp / "evil"
    evil.mkdir()
    evil_wheel = build_wheel(evil, "goodpkg", "1.0", {**GOOD, "goodpkg_init.pth": b"import os\n"})
    pip_install(python, evil_wheel, force=True)
    [result] = manifest_results(python, tmp / "manifest.json", pub)
    assert result.startswith("finding: goodpkg==1.0: installed RECORD differs")


def test_a_manifest_signed_by_another_key_or_edited_is_rejected(
    built: tuple[Path, Path, Path, Path],
) -> None:
    python, lock, house, tmp = built
    priv, pub = keypair(tmp)
    out = tmp / "manifest.json"
    assert create(python, lock, house, priv, out) == 0
    other = tmp / "other"
    other.mkdir()
    _, other_pub = keypair(other)
    [result] = manifest_results(python, out, other_pub)
    assert "signature does not verify" in result
    out.write_text(out.read_text().replace('"1.0"', '"9.9"'))
    assert "signature does not verify" in manifest_results(python, out, pub)[0]


def test_no_manifest_is_made_for_a_wheel_that_is_not_the_locked_one(
    built: tuple[Path, Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    python, lock, house, tmp = built
    priv, _ = keypair(tmp)
    for wheel in house.glob("*.whl"):
        wheel.unlink()
    build_wheel(house, "goodpkg", "1.0", {"goodpkg/__init__.py": b"VALUE = 2\n"})
    assert create(python, lock, house, priv, tmp / "manifest.json") == 2
    assert "not among the lock's hashes" in capsys.readouterr().err
    assert not (tmp / "manifest.json").exists()
