"""The recorded provider replies in tests/assets/providers/, loaded as fresh copies.

Each loader returns a deep copy, so a caller may change a reply (its model, its tool name)
without touching the next one. What the files are and where their shapes come from:
tests/assets/providers/README.md.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "providers"


@cache
def _load(provider: str, name: str) -> Any:
    return json.loads((ASSETS / provider / f"{name}.json").read_text(encoding="utf-8"))


def reply(provider: str, name: str) -> Any:
    """A fresh copy of ``tests/assets/providers/<provider>/<name>.json``."""
    return copy.deepcopy(_load(provider, name))
