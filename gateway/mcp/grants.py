"""Allowlists: which servers' tools a key and a team may see and call. Deny by default.

A grant is a pattern: ``<server>.<tool>`` for one tool, ``<server>.*`` for every tool of a
server. A caller may use a tool when its key holds a grant that matches it and, when the key
belongs to a team, the team holds one too: the team's list is the ceiling of its keys' lists.
Pure functions over data.
"""

from __future__ import annotations

import re
from collections.abc import Collection

PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,47}\.(\*|[A-Za-z0-9_.-]{1,128})$")
PATTERN_HELP = "expected '<server>.<tool>' or '<server>.*'"


def valid(pattern: str) -> bool:
    return PATTERN.match(pattern) is not None


def matches(patterns: Collection[str], server: str, tool: str) -> bool:
    return f"{server}.{tool}" in patterns or f"{server}.*" in patterns


def allowed(
    key_grants: Collection[str], team_grants: Collection[str] | None, server: str, tool: str
) -> bool:
    """``team_grants`` is None for a key of no team."""
    if not matches(key_grants, server, tool):
        return False
    return team_grants is None or matches(team_grants, server, tool)


def key_principal(key_id: str) -> str:
    return f"key:{key_id}"


def team_principal(team_id: str) -> str:
    return f"team:{team_id}"
