from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
DEV_LOCKS = [REPO / "requirements-dev.lock", REPO / "requirements-build.lock"]


VECTORS = REPO / "tests" / "assets" / "sigstore"  # committed: see its README.md


def vectors_dir() -> Path:
    """The sigstore vectors: the committed copy, or SEALGATE_VECTORS (CI points it at a copy
    rebuilt from sigstore-python at the pinned commit)."""
    return Path(os.environ.get("SEALGATE_VECTORS", VECTORS))


@pytest.fixture
def vectors() -> Path:
    path = vectors_dir()
    assert path.is_dir(), f"sigstore vectors not found at {path} (set SEALGATE_VECTORS)"
    return path


@pytest.fixture
def python() -> str:
    return sys.executable
