"""The admin audit log: who did what to which object, and when. Never a key or token.

Each row carries the SHA-256 of the previous row's hash and its own content, so a row changed or
removed after the fact breaks the chain that ``verify`` walks. Rows are appended one at a time
under a lock (a thread lock here, a table lock on PostgreSQL for other replicas).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy import Engine, insert, select, text

from gateway.store.tables import audit_log

GENESIS = "0" * 64
LOG = logging.getLogger("sealgate.audit")
BATCH_SECONDS = 0.05  # rows queued by requests are written together, this often


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting: ``admin`` for the gateway admin credential, ``token:<id>`` otherwise."""

    name: str
    role: str
    team_id: str | None = None


Entry = tuple[datetime, Actor, str, str, dict[str, Any]]  # when, who, action, target, detail


def _digest(
    prev: str, at: str, actor: str, role: str, action: str, target: str, detail: str
) -> str:
    material = json.dumps([prev, at, actor, role, action, target, detail], separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()

    def record(self, actor: Actor, action: str, target: str, detail: dict[str, Any]) -> None:
        self.record_many([(datetime.now(UTC), actor, action, target, detail)])

    def record_many(self, rows: list[Entry]) -> None:
        """Append ``rows`` (when, actor, action, target, detail) in order, in one transaction."""
        with self._lock, self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE"))
            last = connection.execute(
                select(audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
            ).scalar()
            prev = last or GENESIS
            chained: list[dict[str, Any]] = []
            for at, actor, action, target, detail in rows:
                body = json.dumps(detail, sort_keys=True, separators=(",", ":"), default=str)
                digest = _digest(prev, at.isoformat(), actor.name, actor.role, action, target, body)
                chained.append(
                    {
                        "at": at,
                        "actor": actor.name,
                        "role": actor.role,
                        "action": action,
                        "target": target,
                        "detail": body,
                        "prev_hash": prev,
                        "hash": digest,
                    }
                )
                prev = digest
            if chained:
                # one statement for the batch (executemany, rows in order): a statement built
                # and compiled per row cost more than the batch's calls (bench/mcp_tool_call.py)
                connection.execute(insert(audit_log), chained)

    def entries(self, limit: int = 1000) -> list[dict[str, Any]]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
            ).all()
        return [
            {
                "seq": r.seq,
                "at": _aware(r.at).isoformat(),
                "actor": r.actor,
                "role": r.role,
                "action": r.action,
                "target": r.target,
                "detail": json.loads(r.detail),
                "hash": r.hash,
            }
            for r in rows
        ]

    def verify(self) -> int | None:
        """The seq of the first row whose hash does not follow from its content and the row
        before it, or None when the whole chain holds."""
        prev = GENESIS
        with self._engine.connect() as connection:
            for r in connection.execute(select(audit_log).order_by(audit_log.c.seq)):
                at = _aware(r.at).isoformat()
                expected = _digest(prev, at, r.actor, r.role, r.action, r.target, r.detail)
                if r.prev_hash != prev or r.hash != expected:
                    return int(r.seq)
                prev = r.hash
        return None


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class AuditQueue:
    """Rows a request adds (a guardrail's findings), written off the request's path: queued, and
    appended every ``BATCH_SECONDS`` in one transaction on a worker thread, through the same
    chain as every other row. A batch the database refuses is logged as lost (with its count,
    never its content); ``drain`` waits for what is queued (at shutdown)."""

    def __init__(self, log: AuditLog, what: str) -> None:
        self._log = log
        self._what = what
        self._queue: list[Entry] = []
        self._writer: asyncio.Task[None] | None = None

    def add(self, actor: Actor, action: str, target: str, detail: dict[str, Any]) -> None:
        self._queue.append((datetime.now(UTC), actor, action, target, detail))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self._queue:
            await asyncio.sleep(BATCH_SECONDS)
            batch, self._queue = self._queue, []
            try:
                await anyio.to_thread.run_sync(self._log.record_many, batch)
            except Exception:
                LOG.exception("%d audit rows of %s not written", len(batch), self._what)

    async def drain(self) -> None:
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)
