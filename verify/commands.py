"""Subcommands that verify artifacts rather than the environment: signature, vulns, wheelhouse.

Each parser sets ``run``: a callable from the parsed arguments to a list of findings.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

Common = Callable[[argparse.ArgumentParser], None]
Env = Callable[..., str | None]


def add_parsers(sub: Any, common: Common, env: Env) -> None:
    """Register the artifact subcommands on ``sub`` (an argparse subparsers action)."""
