"""Hand-built wheels and throw-away venvs for the attack corpus.

A venv is made with ``python -m venv --without-pip`` and wheels go in with real pip
(``pip --python <venv> install --no-index --no-deps``), so RECORD, bytecode and layout are what
pip writes, not what the test imagines.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def build_wheel(
    out: Path,
    name: str,
    version: str,
    files: dict[str, bytes],
    omit_from_record: tuple[str, ...] = (),
) -> Path:
    """A pure-Python wheel with ``files``; names in ``omit_from_record`` are left out of RECORD."""
    info = f"{name}-{version}.dist-info"
    meta = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: sealgate-tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    everything = {**files, **meta}
    rows = [
        f"{path},{_record_hash(data)},{len(data)}"
        for path, data in everything.items()
        if path not in omit_from_record
    ]
    rows.append(f"{info}/RECORD,,")
    wheel = out / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in everything.items():
            zf.writestr(path, data)
        zf.writestr(f"{info}/RECORD", "\n".join(rows) + "\n")
    return wheel


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_venv(where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    return where / "bin" / "python"


def pip_install(python: Path, *wheels: Path, force: bool = False) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            "--disable-pip-version-check",
            *(["--force-reinstall"] if force else []),
            *map(str, wheels),
        ],
        check=True,
    )


def site_packages(python: Path) -> Path:
    [site] = (python.parent.parent / "lib").glob("python3*/site-packages")
    return site


def lock_for(out: Path, *wheels: Path) -> Path:
    """A hash-locked requirements file pinning exactly these wheels."""
    lines = []
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        lines.append(f"{name}=={version} \\\n    --hash=sha256:{sha256_file(wheel)}")
    lock = out / "attack.lock"
    lock.write_text("\n".join(lines) + "\n")
    return lock
