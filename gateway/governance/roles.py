"""Who may do what in the admin API (pure decisions; admin.py resolves the caller).

    admin        the SEALGATE_ADMIN_KEY credential: everything
    team_admin   a token bound to one team: that team's keys, users and the budgets of its keys
                 and users; reads its team, its team's budgets and reports. Never another team,
                 the team's own limits or budgets, gateway config, admin tokens or the audit log.
    viewer       a token, bound to one team or to none (all teams): reads only; an unscoped
                 viewer also reads /metrics
    metrics      a token bound to no team: reads /metrics and nothing else (a scraper's)

Deny by default: an action not named here is refused to everyone but the admin.

What a caller may not read does not exist for it: a route that is given the id of such an object
(in its path, query or body) answers exactly as for an id that does not exist, so a team admin
cannot learn which ids exist in other teams. 403 is kept for an object the caller may read but
may not do this to.
"""

from __future__ import annotations

from typing import Literal

from gateway.errors import PermissionDenied
from gateway.governance.audit import Actor

Kind = Literal["keys", "users", "teams", "budgets", "tokens", "reports"]

READS = frozenset(
    {"keys:read", "users:read", "teams:read", "budgets:read", "reports:read", "metrics:read"}
)
TEAM_ADMIN_WRITES = frozenset({"keys:write", "users:write", "member_budgets:write"})


def allowed(actor: Actor, action: str, team_id: str | None) -> bool:
    """May ``actor`` do ``action`` on an object that belongs to ``team_id`` (None: to no team,
    or the whole gateway)?"""
    if actor.role == "admin":
        return True
    if actor.role == "viewer":
        return action in READS and (actor.team_id is None or team_id == actor.team_id)
    if actor.role == "metrics":
        return action == "metrics:read"
    if actor.role == "team_admin":
        in_team = actor.team_id is not None and team_id == actor.team_id
        return in_team and (action in READS or action in TEAM_ADMIN_WRITES)
    return False


def hidden(actor: Actor, kind: Kind, team_id: str | None) -> bool:
    """Is an object of this ``kind`` that belongs to ``team_id`` out of ``actor``'s sight? The
    caller must then get the very answer an unknown id gets."""
    return not allowed(actor, f"{kind}:read", team_id)


def require(actor: Actor, action: str, team_id: str | None) -> None:
    if not allowed(actor, action, team_id):
        raise PermissionDenied(
            f"role {actor.role} may not {action.replace(':', ' ')} here", code="forbidden"
        )


def visible_team(actor: Actor) -> str | None:
    """The one team a scoped actor sees, or None for the admin and an unscoped viewer."""
    return None if actor.role == "admin" else actor.team_id
