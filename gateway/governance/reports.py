"""Spend reports: totals of the spend table grouped by key, team, user, project, tag, model,
deployment or day, for a date range, optionally for one team; and the spend logs, the records
themselves, newest first, filtered and paged by a cursor.

By tag, a request with several tags counts in the row of each (and one with none in the row
``null``), so the rows can add up to more than the totals; the totals count every request once.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, and_, case, func, or_, select

from gateway.errors import InvalidRequest
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


@dataclass(frozen=True)
class LogFilter:
    """What the spend logs are narrowed to (None: not narrowed). ``start`` inclusive, ``end``
    exclusive; ``team_id`` is also how a team-scoped caller is held to its team."""

    key_id: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    project: str | None = None
    model: str | None = None
    status: str | None = None
    start: datetime | None = None
    end: datetime | None = None


FILTERED = {
    "key_id": spend.c.key_id,
    "team_id": spend.c.team_id,
    "user_id": spend.c.user_id,
    "project": spend.c.project,
    "model": spend.c.model,
    "status": spend.c.status,
}


def encode_cursor(at: datetime, record_id: str) -> str:
    """Where the next page starts: after the record at ``at`` with ``record_id``."""
    raw = json.dumps([_utc(at).isoformat(), record_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, record_id = json.loads(raw)
        if not isinstance(at, str) or not isinstance(record_id, str):
            raise ValueError("not a cursor")
        return datetime.fromisoformat(at), record_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest(
            "cursor is not one this API gave out: pass next_cursor from the last page",
            param="cursor",
        ) from None


def spend_logs(engine: Engine, where: LogFilter, limit: int, cursor: str | None) -> dict[str, Any]:
    """One page of spend records, newest first (by time, then id), and the cursor of the next
    page (None on the last)."""
    conditions = [
        column == getattr(where, name)
        for name, column in FILTERED.items()
        if getattr(where, name) is not None
    ]
    if where.start is not None:
        conditions.append(spend.c.at >= _utc(where.start))
    if where.end is not None:
        conditions.append(spend.c.at < _utc(where.end))
    if cursor is not None:
        at, record_id = decode_cursor(cursor)
        at = _utc(at)
        conditions.append(or_(spend.c.at < at, and_(spend.c.at == at, spend.c.id < record_id)))
    query = (
        select(spend)
        .where(*conditions)
        .order_by(spend.c.at.desc(), spend.c.id.desc())
        .limit(limit + 1)
    )
    with engine.connect() as connection:
        rows = list(connection.execute(query))
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if page else None
    return {
        "object": "list",
        "data": [spend_record(r) for r in page],
        "next_cursor": encode_cursor(last.at, last.id) if more and last is not None else None,
    }


def spend_record(row: Any) -> dict[str, Any]:
    """A spend row as the API and the sinks show it (never a key: ids, names, counts)."""
    return {
        "id": row.id,
        "at": _utc(row.at).isoformat(),
        "key_id": row.key_id,
        "team_id": row.team_id,
        "user_id": row.user_id,
        "project": row.project,
        "tags": json.loads(row.tags),
        "model": row.model,
        "deployment": row.deployment,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "cached_tokens": row.cached_tokens,
        "cache_write_tokens": row.cache_write_tokens,
        "cost_nanos": row.cost_nanos,
        "cost_usd": usd(row.cost_nanos),
        "latency_ms": row.latency_ms,
        "status": row.status,
        "guardrails": row.guardrails,  # detector names and counts (``card=1``), never the text
    }


def _utc(at: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored as UTC); a naive filter value means UTC too."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def daily(engine: Engine, start: date, end: date, team_id: str | None) -> list[dict[str, Any]]:
    """One row per day from ``start`` to ``end`` inclusive (UTC), days without a request
    included: requests, errors (a record whose status is not ``ok``), tokens and cost."""
    where = [
        spend.c.at >= datetime.combine(start, time(0), tzinfo=UTC),
        spend.c.at < datetime.combine(end + timedelta(days=1), time(0), tzinfo=UTC),
    ]
    if team_id is not None:
        where.append(spend.c.team_id == team_id)
    errors = func.coalesce(func.sum(case((spend.c.status != "ok", 1), else_=0)), 0)
    query = (
        select(spend.c.day.label("day"), *_sums(), errors.label("errors"))
        .where(*where)
        .group_by(spend.c.day)
    )
    with engine.connect() as connection:
        found = {str(r.day): (_row(r), int(r.errors)) for r in connection.execute(query)}
    rows = []
    for offset in range((end - start).days + 1):
        day = (start + timedelta(days=offset)).isoformat()
        row, failed = found.get(day, (dict.fromkeys(FIELDS, 0) | {"cost_usd": usd(0)}, 0))
        tokens = row["prompt_tokens"] + row["completion_tokens"]
        rows.append({"day": day, **row, "errors": failed, "tokens": tokens})
    return rows
