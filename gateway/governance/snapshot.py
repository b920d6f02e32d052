"""What the hot path needs to know about teams, budgets and project and tag limits, held in
memory and reloaded from the database every ``refresh_seconds`` off the hot path.

A snapshot also carries each budget's spend so far in its current period (from the spend table),
which seeds the budget's running counter the first time a replica (or, with Redis, the first
replica) charges it in that period. When the database cannot be read, the last snapshot stays in
use: known keys keep working, with the limits and budgets they had.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.sql.elements import ColumnElement

from gateway.governance import periods
from gateway.governance.pricing import NANOS_PER_USD
from gateway.governance.tenancy import Budget, Team, Tenancy, User
from gateway.metrics import METRICS
from gateway.store.tables import spend

TEAM_BUDGET_REMAINING = METRICS.gauge(
    "sealgate_team_budget_remaining_usd",
    "what is left of each team budget in its period, as of the last governance refresh",
)


@dataclass(frozen=True)
class Snapshot:
    teams: dict[str, Team] = field(default_factory=dict)
    budgets: dict[tuple[str, str], tuple[Budget, ...]] = field(default_factory=dict)
    seeds: dict[tuple[str, str], int] = field(default_factory=dict)  # (budget id, label)
    users: dict[str, User] = field(default_factory=dict)  # the users with a limit
    # (scope, id) -> (rpm, tpm): the admin API's project and tag limits
    scope_limits: dict[tuple[str, str], tuple[int | None, int | None]] = field(default_factory=dict)

    def budgets_for(self, scope: str, scope_id: str | None) -> tuple[Budget, ...]:
        if scope_id is None:
            return ()
        return self.budgets.get((scope, scope_id), ())


SCOPE_COLUMN = {
    "key": spend.c.key_id,
    "team": spend.c.team_id,
    "user": spend.c.user_id,
    "project": spend.c.project,
}


def has_tag(tag: str) -> ColumnElement[bool]:
    """Spend rows whose tags (a JSON list of strings) hold ``tag``: its JSON form, quotes
    included, appears in the list only as a whole element (a quote inside a tag is escaped)."""
    pattern = json.dumps(tag).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return spend.c.tags.like(f"%{pattern}%", escape="\\")


def spent_since(engine: Engine, scope: str, ids: list[str], start: datetime) -> dict[str, int]:
    total = func.coalesce(func.sum(spend.c.cost_nanos), 0)
    with engine.connect() as connection:
        if scope == "tag":
            return {
                tag: int(
                    connection.execute(
                        select(total).where(has_tag(tag), spend.c.at >= start)
                    ).scalar_one()
                )
                for tag in ids
            }
        column = SCOPE_COLUMN[scope]
        query = select(column, total).where(column.in_(ids), spend.c.at >= start).group_by(column)
        return {row[0]: int(row[1]) for row in connection.execute(query)}


def load(engine: Engine, tenancy: Tenancy, now: datetime) -> Snapshot:
    teams = {t.id: t for t in tenancy.teams()}
    users = {u.id: u for u in tenancy.users() if u.rpm_limit is not None or u.tpm_limit is not None}
    grouped: dict[tuple[str, str], list[Budget]] = defaultdict(list)
    by_window: dict[tuple[str, str, datetime], list[Budget]] = defaultdict(list)
    for budget in tenancy.budgets():
        grouped[(budget.scope, budget.scope_id)].append(budget)
        start, _ = periods.window(budget.period, now)
        by_window[(budget.scope, budget.period, start)].append(budget)
    seeds: dict[tuple[str, str], int] = {}
    for (scope, _, start), members in by_window.items():
        spent = spent_since(engine, scope, sorted({b.scope_id for b in members}), start)
        for budget in members:
            seeds[(budget.id, periods.label(budget.period, start))] = spent.get(budget.scope_id, 0)
    limits: dict[tuple[str, str], tuple[int | None, int | None]] = {
        (s.scope, s.scope_id): (s.rpm_limit, s.tpm_limit) for s in tenancy.scope_limits()
    }
    return Snapshot(teams, {k: tuple(v) for k, v in grouped.items()}, seeds, users, limits)


class _Latest:
    """The snapshot the last refresh loaded (one reference, swapped whole: refreshes run in a
    worker thread, scrapes on the event loop)."""

    snapshot: Snapshot | None = None


LATEST = _Latest()


def publish_team_budgets() -> None:
    """Set ``sealgate_team_budget_remaining_usd`` from the latest snapshot, at scrape time
    (every team budget; labels: the team's and the budget's ids and the period, never a key)."""
    snap = LATEST.snapshot
    TEAM_BUDGET_REMAINING.clear()
    if snap is None:
        return
    now = datetime.now(UTC)
    for (scope, team_id), found in snap.budgets.items():
        if scope != "team":
            continue
        for budget in found:
            start, _ = periods.window(budget.period, now)
            spent = snap.seeds.get((budget.id, periods.label(budget.period, start)), 0)
            labels = (("team_id", team_id), ("budget_id", budget.id), ("period", budget.period))
            TEAM_BUDGET_REMAINING[labels] = max(0, budget.max_nanos - spent) / NANOS_PER_USD


METRICS.collect_with(publish_team_budgets)
