"""Spend exports: every spend record of one UTC day, for one team or all, as CSV or JSON Lines.

The rows are read in batches and rendered as they come (``lines``), so a day of millions of
records never sits in memory. A CSV cell that a spreadsheet would take for a formula (it starts
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return; a project or tag comes from a request
header) is prefixed with ``'``; JSON Lines carry the values as they are.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date
from typing import Any, Literal

from sqlalchemy import Engine, select

from gateway.governance.reports import spend_record
from gateway.store.tables import spend

Format = Literal["csv", "jsonl"]
BATCH = 1000
COLUMNS = (
    "id",
    "at",
    "day",
    "key_id",
    "team_id",
    "user_id",
    "project",
    "tags",
    "model",
    "deployment",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_nanos",
    "cost_usd",
    "latency_ms",
    "status",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def records(engine: Engine, day: date, team_id: str | None) -> Iterator[dict[str, Any]]:
    """The day's spend records in the order they were made."""
    query = select(spend).where(spend.c.day == day.isoformat()).order_by(spend.c.at, spend.c.id)
    if team_id is not None:
        query = query.where(spend.c.team_id == team_id)
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=BATCH).execute(query)
        for row in result:
            shown = spend_record(row)  # the spend logs' and sinks' form, with the day beside
            yield {"id": shown.pop("id"), "at": shown.pop("at"), "day": row.day, **shown}


def _cell(value: Any) -> str:
    text = "" if value is None else ",".join(value) if isinstance(value, list) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def lines(rows: Iterator[dict[str, Any]], form: Format) -> Iterator[str]:
    if form == "jsonl":
        for row in rows:
            yield json.dumps(row, separators=(",", ":")) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(row[name]) for name in COLUMNS])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
