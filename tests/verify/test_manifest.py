"""The signed install manifest: made with the wheelhouse at install time, checked without it.

The venvs here are plain pip installs of hand-built wheels (the install layout itself is tested
with docker/install.sh in tests/gateway/test_startup_attacks.py); the manifest binds every file
of the site directory to a locked wheel, so RECORD files do not matter to it.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import marshal
import os
from pathlib import Path

import pytest

from tests.support.keys import write_keypair
from verify import cli, manifest, selfcheck

from .conftest import POLICIES
from .wheels import build_wheel, lock_for, make_venv, pip_install, site_packages

pytestmark = pytest.mark.slow
GOOD = {"goodpkg/__init__.py": b"VALUE = 1\n", "goodpkg/core.py": b"def f():\n    return 1\n"}


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


def create(python: Path, lock: Path, house: Path, out: Path, *signing: str) -> int:
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
            *signing,
            "--out",
            str(out),
            "--project",
            "",
        ]
    )


def signed(built: tuple[Path, Path, Path, Path]) -> tuple[Path, Path]:
    python, lock, house, tmp = built
    priv, pub = keypair(tmp)
    assert create(python, lock, house, tmp / "manifest.json", "--key", str(priv)) == 0
    return tmp / "manifest.json", pub


def problems(python: Path, out: Path, pub: Path) -> dict[str, str]:
    report = selfcheck.run(str(python), [], POLICIES, (), (), signed_manifest=(out, pub))
    return {f.subject: f.reason for f in report.problems}


def test_a_manifest_made_at_install_time_checks_clean_and_binds_every_file(
    built: tuple[Path, Path, Path, Path],
) -> None:
    python = built[0]
    out, pub = signed(built)
    report = selfcheck.run(str(python), [], POLICIES, (), (), signed_manifest=(out, pub))
    assert report.problems == ()
    assert "goodpkg==1.0: every file is the locked wheel goodpkg-1.0-py3-none-any.whl's" in [
        f"{f.subject}: {f.reason}" for f in report.findings
    ]
    doc = json.loads(json.loads(out.read_text())["payload"])
    origins = {origin for _, _, origin in doc["files"].values()}
    assert origins == {"wheel", "installer", "bytecode"}  # pip compiled the sources


def test_a_changed_module_with_its_record_row_rewritten_is_caught(
    built: tuple[Path, Path, Path, Path],
) -> None:
    python = built[0]
    out, pub = signed(built)
    site = site_packages(python)
    core = site / "goodpkg" / "core.py"
    payload = b"import os\ndef f():\n    return os.environ\n"
    core.write_bytes(payload)
    record = next(site.glob("goodpkg-1.0.dist-info")) / "RECORD"
    digest = base64.urlsafe_b64encode(hashlib.sha256(payload).digest()).rstrip(b"=").decode()
    rows = [
        f"goodpkg/core.py,sha256={digest},{len(payload)}" if r.startswith("goodpkg/core.py,") else r
        for r in record.read_text().splitlines()
    ]
    record.write_text("\n".join(rows) + "\n")
    assert selfcheck.run(str(python), [], POLICIES, ("record",), ()).problems == ()
    found = problems(python, out, pub)
    assert "differs from the signed install manifest" in found[str(core)]
    assert "installer metadata" in found[str(record)]


def test_a_same_version_release_installed_after_the_manifest_is_caught(
    built: tuple[Path, Path, Path, Path],
) -> None:
    python, _, _, tmp = built
    out, pub = signed(built)
    evil = tmp / "evil"
    evil.mkdir()
    evil_wheel = build_wheel(evil, "goodpkg", "1.0", {**GOOD, "goodpkg_init.pth": b"import os\n"})
    pip_install(python, evil_wheel, force=True)
    found = problems(python, out, pub)
    init = str(site_packages(python) / "goodpkg_init.pth")
    assert found[init] == "not in the signed install manifest: no locked wheel ships it"


def test_a_poisoned_pyc_whose_header_matches_its_source_is_caught(
    built: tuple[Path, Path, Path, Path],
) -> None:
    python = built[0]
    out, pub = signed(built)
    source = site_packages(python) / "goodpkg" / "core.py"
    pyc = Path(importlib.util.cache_from_source(str(source)))
    header = pyc.read_bytes()[:16]  # the timestamp header pip wrote: Python would load it
    code = compile("import os\ndef f():\n    return os.environ\n", str(source), "exec")
    pyc.write_bytes(header + marshal.dumps(code))
    assert selfcheck.run(str(python), [], POLICIES, ("record",), ()).problems == ()
    found = problems(python, out, pub)
    assert found[str(pyc)].startswith("differs from the signed install manifest: not the bytecode")


def test_a_manifest_signed_by_another_key_or_edited_is_rejected(
    built: tuple[Path, Path, Path, Path],
) -> None:
    python, _, _, tmp = built
    out, pub = signed(built)
    other = tmp / "other"
    other.mkdir()
    _, other_pub = keypair(other)
    [reason] = problems(python, out, other_pub).values()
    assert "not signed by" in reason
    outer = json.loads(out.read_text())
    outer["payload"] = outer["payload"].replace('"1.0"', '"9.9"')
    out.write_text(json.dumps(outer))
    [reason] = problems(python, out, pub).values()
    assert "the signature does not verify" in reason


def test_no_manifest_is_made_for_a_wheel_that_is_not_the_locked_one(
    built: tuple[Path, Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    python, lock, house, tmp = built
    priv, _ = keypair(tmp)
    for wheel in house.glob("*.whl"):
        wheel.unlink()
    build_wheel(house, "goodpkg", "1.0", {"goodpkg/__init__.py": b"VALUE = 2\n"})
    assert create(python, lock, house, tmp / "manifest.json", "--key", str(priv)) == 2
    assert "not among the lock's hashes" in capsys.readouterr().err
    assert not (tmp / "manifest.json").exists()


def test_no_manifest_is_made_while_a_file_no_wheel_ships_is_installed(
    built: tuple[Path, Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    python, lock, house, tmp = built
    priv, _ = keypair(tmp)
    (site_packages(python) / "helper.py").write_text("import socket\n")
    assert create(python, lock, house, tmp / "manifest.json", "--key", str(priv)) == 2
    assert "helper.py: no locked wheel ships it" in capsys.readouterr().err


def test_an_ephemeral_key_signs_the_manifest_and_only_its_public_half_is_written(
    built: tuple[Path, Path, Path, Path],
) -> None:
    python, lock, house, tmp = built
    out, pub = tmp / "manifest.json", tmp / "ephemeral.pub"
    before = set(os.listdir(tmp))
    code = create(python, lock, house, out, "--ephemeral-key", "--public-key-out", str(pub))
    assert code == 0
    assert set(os.listdir(tmp)) - before == {"manifest.json", "ephemeral.pub"}
    assert b"PRIVATE" not in out.read_bytes() + pub.read_bytes()
    assert problems(python, out, pub) == {}


def test_a_payload_whose_signature_does_not_verify_is_never_parsed(tmp_path: Path) -> None:
    _, pub = keypair(tmp_path)
    unsigned = json.dumps({"payload": '{"format": 2, "files": {}}', "signature": "MAA="})
    with pytest.raises(ValueError, match="signature does not verify"):
        manifest.open_signed(unsigned.encode(), pub.read_bytes())
