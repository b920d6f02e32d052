"""Sealgate installed the production way (docker/install.sh, the real runtime lock), and copies.

``install`` runs the script the image's build stage and ``make run`` run, into a throw-away
venv, keeping its wheelhouse; one such install serves a whole test session (``tests/conftest.py``)
and each test that changes it works on a ``copy`` (``cp -a``; only the console script's
shebang names the venv's path, and it is rewritten to the copy's). ``start_commands`` are the
three ways the gateway starts: the ``sealgate`` command, ``python -m gateway``, and the image's
ENTRYPOINT + CMD read from the Dockerfile with ``/opt/sealgate`` replaced by the venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE_FILES = ("pyproject.toml", "README.md", "requirements.lock", "requirements-build.lock")
SOURCE_DIRS = ("gateway", "verify", "policies", "docker")
VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class Installed:
    venv: Path
    src: Path
    wheelhouse: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def site(self) -> Path:
        return self.venv / "lib" / VERSION / "site-packages"

    @property
    def deps(self) -> Path:
        return self.venv / "lib" / "sealgate-deps"

    @property
    def boot(self) -> Path:
        return self.site / "gateway" / "boot.py"

    @property
    def manifest_key(self) -> Path:
        return self.venv / "lib" / "sealgate-manifest.pub"

    def launcher(self, *args: str) -> list[str]:
        return [str(self.python), "-I", "-S", "-B", str(self.boot), *args]


def source_tree(where: Path) -> Path:
    """What the image's build context holds: the sources, locks, policies and docker/."""
    where.mkdir(parents=True)
    for name in SOURCE_FILES:
        shutil.copy2(REPO / name, where / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCE_DIRS:
        shutil.copytree(REPO / name, where / name, ignore=ignore)
    return where


def install(
    where: Path, key: Path | None = None
) -> tuple[Installed, subprocess.CompletedProcess[str]]:
    """docker/install.sh into ``where``/venv, from a copy of the source tree."""
    src = source_tree(where / "src")
    venv, wheels = where / "venv", where / "wheelhouse"
    env = {**os.environ, "SEALGATE_VENV": str(venv), "SEALGATE_SRC": str(src)}
    env |= {"SEALGATE_WHEELHOUSE": str(wheels), "PYTHON": sys._base_executable}
    if key is not None:
        env["SEALGATE_MANIFEST_KEY_FILE"] = str(key)
    done = subprocess.run(
        [str(src / "docker" / "install.sh")], env=env, capture_output=True, text=True, timeout=900
    )
    return Installed(venv, src, wheels), done


def copy(base: Installed, where: Path) -> Installed:
    """A copy of an installed venv, at another path, as an attacker would find it there."""
    where.mkdir(parents=True, exist_ok=True)
    venv = where / "venv"
    subprocess.run(["cp", "-a", str(base.venv), str(venv)], check=True)
    script = venv / "bin" / "sealgate"
    lines = script.read_text().splitlines(keepends=True)
    script.write_text(f"#!{venv / 'bin' / 'python'}\n" + "".join(lines[1:]))
    return Installed(venv, base.src, base.wheelhouse)


def _dockerfile_json(keyword: str) -> list[str]:
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith(keyword + " "):
            value: list[str] = json.loads(line[len(keyword) + 1 :])
            return value
    raise AssertionError(f"no {keyword} in the Dockerfile")


def image_command(installed: Installed) -> list[str]:
    """The image's ENTRYPOINT + CMD, pointed at this venv instead of /opt/sealgate."""
    words = _dockerfile_json("ENTRYPOINT") + _dockerfile_json("CMD")
    return [
        w.replace("/opt/sealgate", str(installed.venv)).replace("python3.11", VERSION)
        for w in words
    ]


def start_commands(installed: Installed) -> dict[str, list[str]]:
    """The three ways the gateway starts, each ``serve`` from this venv."""
    return {
        "the sealgate command": [str(installed.venv / "bin" / "sealgate"), "serve"],
        "python -m gateway": [str(installed.python), "-m", "gateway", "serve"],
        "the image entrypoint": image_command(installed),
    }


def image_config(installed: Installed, where: Path, lock: Path | None = None) -> Path:
    """docker/config.yaml (the image's), its /etc/sealgate paths pointed at the source copy."""
    text = (REPO / "docker" / "config.yaml").read_text()
    text = text.replace(
        "/etc/sealgate/requirements.lock", str(lock or installed.src / "requirements.lock")
    )
    text = text.replace("/etc/sealgate/policies", str(installed.src / "policies"))
    config = where / "config.yaml"
    config.write_text(text)
    return config
