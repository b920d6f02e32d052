"""Spend reports: totals of the spend table grouped by key, team, user, project, tag, model,
deployment or day, for a date range, optionally for one team.

By tag, a request with several tags counts in the row of each (and one with none in the row
``null``), so the rows can add up to more than the totals; the totals count every request once.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, func, select

from gateway.governance.pricing import usd
from gateway.store.tables import spend

GroupBy = Literal["key", "team", "user", "project", "tag", "model", "deployment", "day"]
COLUMNS = {
    "key": spend.c.key_id,
    "team": spend.c.team_id,
    "user": spend.c.user_id,
    "project": spend.c.project,
    "model": spend.c.model,
    "deployment": spend.c.deployment,
    "day": spend.c.day,
    "tag": spend.c.tags,  # a JSON list, split into its tags after the query
}


def _sums() -> list[Any]:
    return [
        func.count().label("requests"),
        func.coalesce(func.sum(spend.c.prompt_tokens), 0).label("prompt_tokens"),
        func.coalesce(func.sum(spend.c.completion_tokens), 0).label("completion_tokens"),
        func.coalesce(func.sum(spend.c.cached_tokens), 0).label("cached_tokens"),
        func.coalesce(func.sum(spend.c.cost_nanos), 0).label("cost_nanos"),
    ]


FIELDS = ("requests", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_nanos")


def _row(row: Any) -> dict[str, Any]:
    cost = int(row.cost_nanos)
    return {
        "requests": int(row.requests),
        "prompt_tokens": int(row.prompt_tokens),
        "completion_tokens": int(row.completion_tokens),
        "cached_tokens": int(row.cached_tokens),
        "cost_nanos": cost,
        "cost_usd": usd(cost),
    }


def _by_tag(rows: list[tuple[Any, dict[str, Any]]]) -> list[tuple[Any, dict[str, Any]]]:
    """Rows grouped by their list of tags, regrouped by each tag in it."""
    found: dict[str | None, dict[str, Any]] = {}
    for tags, row in rows:
        for tag in json.loads(tags) or [None]:
            into = found.setdefault(tag, dict.fromkeys(FIELDS, 0))
            for name in FIELDS:
                into[name] += row[name]
    ordered = sorted(found.items(), key=lambda item: (item[0] is None, item[0] or ""))
    return [(tag, {**sums, "cost_usd": usd(sums["cost_nanos"])}) for tag, sums in ordered]


def spend_report(
    engine: Engine,
    group_by: GroupBy,
    start: date | None,
    end: date | None,
    team_id: str | None,
) -> dict[str, Any]:
    """Rows per group and the totals, for days from ``start`` to ``end`` inclusive (UTC)."""
    column = COLUMNS[group_by]
    where = []
    if start is not None:
        where.append(spend.c.at >= datetime.combine(start, time(0), tzinfo=UTC))
    if end is not None:
        until = datetime.combine(end + timedelta(days=1), time(0), tzinfo=UTC)
        where.append(spend.c.at < until)
    if team_id is not None:
        where.append(spend.c.team_id == team_id)
    grouped = select(column.label("group"), *_sums()).where(*where).group_by(column)
    with engine.connect() as connection:
        rows = [(r.group, _row(r)) for r in connection.execute(grouped.order_by(column))]
    # Totals are summed from the rows (one query, one snapshot) so they always agree.
    totals = {k: sum(r[k] for _, r in rows) for k in FIELDS}
    totals["cost_usd"] = usd(totals["cost_nanos"])
    if group_by == "tag":
        rows = _by_tag(rows)
    return {
        "object": "spend_report",
        "group_by": group_by,
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
        "team_id": team_id,
        "data": [{group_by: group, **row} for group, row in rows],
        "totals": totals,
    }
