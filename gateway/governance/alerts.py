"""Budget alerts: a soft threshold reached, a hard limit reached; each once per budget and period
across every replica, kept in the database and handed to a sink.

The replica that sees a budget cross a line (``Governance.admit``) queues a ``BudgetAlert``; a
task of its own, off the hot path, inserts it into ``budget_alerts``, whose unique constraint on
(budget, period, kind) lets exactly one insert win across all replicas. Only the replica whose
insert won hands the alert to the sink, then stamps ``delivered_at``. A replica queues each
(budget, period, kind) once, so a budget that stays full costs no query per request.

The sink is the seam to whatever reaches a person (a webhook, a chat channel)::

    class AlertSink(Protocol):
        async def deliver(self, alert: BudgetAlert) -> None: ...

``deliver`` is awaited on the gateway's event loop; raising means "not delivered" (the row
stays, ``delivered_at`` empty, and the failure is logged by exception type). Every replica sweeps
every ``retry_seconds`` for alerts left undelivered that long (a sink that failed, a replica that
died between recording and delivering) and delivers each again: it claims the row first (one
conditional UPDATE, so one replica wins each attempt) and gives the claim back when the sink fails
again. An alert is thus delivered at least once; a sink keyed by the alert's id (the sink queue
of ``sinks.AlertEvents``) makes that exactly once. ``LogSink``, the default, writes one warning
line per alert. ``BudgetAlert.public()`` is the JSON form (amounts as USD strings), the one the
admin API lists.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import anyio.to_thread
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway import tokens
from gateway.governance.pricing import usd
from gateway.store.tables import budget_alerts

log = logging.getLogger("sealgate.governance")

Kind = Literal["soft", "hard"]
MAX_QUEUED = 10_000
LOG_MESSAGES = {"soft": "budget soft threshold reached", "hard": "budget hard limit reached"}


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    budget_id: str
    scope: str  # key | team | user
    scope_id: str
    period: str  # daily | weekly | monthly | total
    period_label: str  # e.g. d20260305
    kind: Kind
    threshold_nanos: int  # the soft threshold, or the hard limit
    spent_nanos: int  # spent and reserved when the line was crossed
    at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "budget_id": self.budget_id,
            "scope": self.scope,
            "scope_id": self.scope_id,
            "period": self.period,
            "period_label": self.period_label,
            "kind": self.kind,
            "threshold_usd": usd(self.threshold_nanos),
            "spent_usd": usd(self.spent_nanos),
            "at": self.at.isoformat(),
        }


class AlertSink(Protocol):
    async def deliver(self, alert: BudgetAlert) -> None: ...


class LogSink:
    """The default sink: one warning line per alert, in the gateway's structured log."""

    async def deliver(self, alert: BudgetAlert) -> None:
        log.warning(
            LOG_MESSAGES[alert.kind],
            extra={
                "sg_budget_id": alert.budget_id,
                "sg_scope": f"{alert.scope}:{alert.scope_id}",
                "sg_period": alert.period_label,
                "sg_spent_usd": usd(alert.spent_nanos),
                "sg_threshold_usd": usd(alert.threshold_nanos),
            },
        )


class Alerts:
    def __init__(
        self, engine: Engine, sink: AlertSink | None = None, retry_seconds: float = 30.0
    ) -> None:
        self._engine = engine
        self.sink: AlertSink = sink or LogSink()
        self.retry_seconds = retry_seconds
        self._seen: set[tuple[str, str, str]] = set()
        self._queue: asyncio.Queue[BudgetAlert] = asyncio.Queue(MAX_QUEUED)
        self._worker: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def raised(self, alert: BudgetAlert) -> bool:
        """Queue ``alert`` unless this replica already did for its budget, period and kind
        (never blocks; a full queue drops it with a warning). Whether it was queued."""
        seen = (alert.budget_id, alert.period_label, alert.kind)
        if seen in self._seen:
            return False
        if len(self._seen) > MAX_QUEUED:
            self._seen.clear()  # older periods; the database still refuses a second alert
        self._seen.add(seen)
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            log.warning("budget alert dropped: too many queued", extra={"sg_kind": alert.kind})
            return False
        return True

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._worker = loop.create_task(self._run())
        self._sweeper = loop.create_task(self._sweep())

    async def stop(self) -> None:
        for task in (self._worker, self._sweeper):
            if task is not None:
                task.cancel()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.retry_seconds)
            try:
                await self.redeliver(self.retry_seconds)
            except Exception as exc:  # noqa: BLE001 - the database failed: try again next time
                log.warning("budget alerts not swept", extra={"sg_error": type(exc).__name__})

    async def redeliver(self, older_than: float) -> int:
        """Deliver again every alert left undelivered for ``older_than`` seconds; how many were
        delivered now."""
        delivered = 0
        for alert_id, alert in await anyio.to_thread.run_sync(self._undelivered, older_than):
            if not await anyio.to_thread.run_sync(self._claim, alert_id, True):
                continue  # another replica is delivering it
            try:
                await self.sink.deliver(alert)
            except Exception as exc:  # noqa: BLE001 - give the claim back; the next sweep retries
                log.warning("budget alert not delivered", extra={"sg_error": type(exc).__name__})
                await anyio.to_thread.run_sync(self._claim, alert_id, False)
                continue
            delivered += 1
        return delivered

    def _undelivered(self, older_than: float) -> list[tuple[str, BudgetAlert]]:
        before = datetime.fromtimestamp(datetime.now(UTC).timestamp() - older_than, UTC)
        query = (
            select(budget_alerts)
            .where(budget_alerts.c.delivered_at.is_(None), budget_alerts.c.at <= before)
            .order_by(budget_alerts.c.at)
            .limit(100)
        )
        with self._engine.connect() as connection:
            return [(row.id, _alert(row)) for row in connection.execute(query).all()]

    def _claim(self, alert_id: str, take: bool) -> bool:
        """Mark an undelivered alert delivered (``take``), or undo that; whether it changed."""
        row = budget_alerts.c
        with self._engine.begin() as connection:
            if take:
                query = update(budget_alerts).where(row.id == alert_id, row.delivered_at.is_(None))
                return connection.execute(query.values(delivered_at=datetime.now(UTC))).rowcount > 0
            connection.execute(
                update(budget_alerts).where(row.id == alert_id).values(delivered_at=None)
            )
            return True

    async def drain(self) -> None:
        """Record and deliver what is queued now (tests; a worker does it when started)."""
        while not self._queue.empty():
            await self._handle(self._queue.get_nowait())

    async def _run(self) -> None:
        while True:
            await self._handle(await self._queue.get())

    async def _handle(self, alert: BudgetAlert) -> None:
        try:
            alert_id = await anyio.to_thread.run_sync(self._record, alert)
        except Exception as exc:  # noqa: BLE001 - the database failed: say so, keep serving
            log.warning("budget alert not recorded", extra={"sg_error": type(exc).__name__})
            self._seen.discard((alert.budget_id, alert.period_label, alert.kind))
            return
        if alert_id is None:
            return  # another replica recorded it first, and delivers it
        try:
            await self.sink.deliver(alert)
        except Exception as exc:  # noqa: BLE001 - a sink that fails must not stop the gateway
            log.warning("budget alert not delivered", extra={"sg_error": type(exc).__name__})
            return
        await anyio.to_thread.run_sync(self._delivered, alert_id)

    def _record(self, alert: BudgetAlert) -> str | None:
        """Insert the alert; its id, or None when another replica already has."""
        alert_id = tokens.new_id()
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    insert(budget_alerts).values(
                        id=alert_id,
                        budget_id=alert.budget_id,
                        scope=alert.scope,
                        scope_id=alert.scope_id,
                        period=alert.period,
                        period_label=alert.period_label,
                        kind=alert.kind,
                        threshold_nanos=alert.threshold_nanos,
                        spent_nanos=alert.spent_nanos,
                        at=alert.at,
                    )
                )
        except IntegrityError:
            return None
        return alert_id

    def _delivered(self, alert_id: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                update(budget_alerts)
                .where(budget_alerts.c.id == alert_id)
                .values(delivered_at=datetime.now(UTC))
            )

    def list(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The newest alerts first, each with ``delivered_at`` (None: not delivered)."""
        query = select(budget_alerts).order_by(budget_alerts.c.at.desc()).limit(limit)
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        found = []
        for row in rows:
            alert = _alert(row)
            delivered = row.delivered_at
            if delivered is not None and delivered.tzinfo is None:
                delivered = delivered.replace(tzinfo=UTC)
            found.append(
                {
                    "id": row.id,
                    **alert.public(),
                    "delivered_at": delivered.isoformat() if delivered else None,
                }
            )
        return found


def _alert(row: Any) -> BudgetAlert:
    at = row.at if row.at.tzinfo is not None else row.at.replace(tzinfo=UTC)
    return BudgetAlert(
        row.budget_id,
        row.scope,
        row.scope_id,
        row.period,
        row.period_label,
        row.kind,
        row.threshold_nanos,
        row.spent_nanos,
        at,
    )
