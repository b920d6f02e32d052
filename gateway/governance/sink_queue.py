"""The durable sink queue: what each configured sink still has to deliver.

    spend row inserted ──(trigger, same transaction)──> sink_queue: one row per registered sink
    other events (``enqueue``: budget alerts, ...)  ──> sink_queue: one row per registered sink
    access events (``enqueue_many``, in batches from sink_events.py) ──> the same
    a sink's delivery loop: ``claim`` a batch (a lease) ── deliver ── ``ack`` (delete) or
                            ``release`` (for a retry, by this replica or another)

Why rows and not a position: the outbox file replays spend records after a database outage with
their original, older time, and a PostgreSQL sequence is not commit-ordered either, so a cursor
over either would skip rows committed behind it. Each sink's acknowledged position is instead the
set of rows it has not deleted. A replay inserts no spend row that is already there, so it queues
nothing twice; a row that was delivered and deleted is not queued again. An event's id (a spend
event's is the spend row's id) is unique per sink.

Across replicas, ``claim`` leases a batch to one replica (PostgreSQL: ``FOR UPDATE SKIP LOCKED``
under the lease update, so two replicas never take the same rows; SQLite has one writer). A
replica that dies mid-delivery leaves its lease to expire, and another delivers the batch again:
delivery is at least once, exactly once unless a replica dies between the receiver's answer and
the ``ack``; receivers can drop repeats by event id.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, func, insert, literal, select, text, update

from gateway.governance.reports import spend_record
from gateway.store.tables import sink_queue, sinks, spend

SPEND = "spend"
SEP = (",", ":")
# One statement, so it takes the write lock at once: a read then a write in one SQLite
# transaction fails with "database is locked" when another writer (the spend batch and its
# trigger) went first, whatever the busy timeout.
ENQUEUE = text(
    "INSERT INTO sink_queue (sink, event_id, type, body) "
    "SELECT name, :event_id, :type, :body FROM sinks WHERE true "
    "ON CONFLICT (sink, event_id) DO NOTHING"
)

CLAIM_POSTGRES = text(
    "UPDATE sink_queue SET lease_until = :until, lease_owner = :owner "
    "WHERE seq IN (SELECT seq FROM sink_queue WHERE sink = :sink "
    "AND (lease_until IS NULL OR lease_until < :now) ORDER BY seq LIMIT :limit "
    "FOR UPDATE SKIP LOCKED) "
    "RETURNING seq, event_id, type, body"
)
CLAIM_SQLITE = text(
    "UPDATE sink_queue SET lease_until = :until, lease_owner = :owner "
    "WHERE seq IN (SELECT seq FROM sink_queue WHERE sink = :sink "
    "AND (lease_until IS NULL OR lease_until < :now) ORDER BY seq LIMIT :limit) "
    "RETURNING seq, event_id, type, body"
)


@dataclass(frozen=True)
class Event:
    """One queued event in its envelope: ``{"id", "type", "data"}``."""

    seq: int
    id: str
    type: str
    data: Mapping[str, Any]

    def envelope(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "data": dict(self.data)}


class SinkQueue:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.owner = secrets.token_hex(8)  # this process, as the holder of its leases

    def register(self, names: Iterable[str]) -> list[str]:
        """Make these the sinks that new events are queued for. A sink no longer configured is
        removed with what it had not delivered; returns the names removed."""
        wanted = set(names)
        with self._engine.begin() as connection:
            present = {row[0] for row in connection.execute(select(sinks.c.name))}
            gone = sorted(present - wanted)
            if gone:
                connection.execute(delete(sink_queue).where(sink_queue.c.sink.in_(gone)))
                connection.execute(delete(sinks).where(sinks.c.name.in_(gone)))
            for name in sorted(wanted - present):
                connection.execute(insert(sinks).values(name=name))
        return gone

    def enqueue(self, type_: str, event_id: str, data: Mapping[str, Any]) -> None:
        """Queue an event other than spend (a budget alert, ...) for every registered sink;
        the same id again is ignored."""
        body = json.dumps(dict(data), separators=SEP)
        with self._engine.begin() as connection:
            connection.execute(ENQUEUE, {"event_id": event_id, "type": type_, "body": body})

    def enqueue_many(self, events: Sequence[tuple[str, str, Mapping[str, Any]]]) -> None:
        """Queue many events (type, id, data) for every registered sink in one transaction
        (the access events' batches, ``sink_events.py``); an id already queued is ignored, so a
        batch written again after an unclear failure adds nothing."""
        rows = [
            {"event_id": event_id, "type": type_, "body": json.dumps(dict(data), separators=SEP)}
            for type_, event_id, data in events
        ]
        with self._engine.begin() as connection:
            connection.execute(ENQUEUE, rows)

    def claim(self, sink: str, limit: int, lease_seconds: float) -> list[Event]:
        """Lease up to ``limit`` of the sink's oldest undelivered events to this process."""
        now = time.time()
        params = {
            "sink": sink,
            "limit": limit,
            "now": now,
            "until": now + lease_seconds,
            "owner": self.owner,
        }
        with self._engine.begin() as connection:
            claim = CLAIM_SQLITE if connection.dialect.name == "sqlite" else CLAIM_POSTGRES
            rows = sorted(connection.execute(claim, params), key=lambda row: row.seq)
            spent = [row.event_id for row in rows if row.type == SPEND]
            records = {}
            if spent:
                found = connection.execute(select(spend).where(spend.c.id.in_(spent)))
                records = {row.id: spend_record(row) for row in found}
        events = []
        for row in rows:
            if row.type == SPEND:
                data = records.get(row.event_id)
                if data is None:  # the spend row is gone (retention): nothing to send
                    continue
            else:
                data = json.loads(row.body or "{}")
            events.append(Event(row.seq, row.event_id, row.type, data))
        missing = [row.seq for row in rows if row.type == SPEND and row.event_id not in records]
        if missing:
            self.ack(missing)
        return events

    def ack(self, seqs: list[int]) -> None:
        """The sink took these: they leave its queue."""
        with self._engine.begin() as connection:
            connection.execute(
                delete(sink_queue).where(
                    sink_queue.c.seq.in_(seqs), sink_queue.c.lease_owner == self.owner
                )
            )

    def release(self, seqs: list[int]) -> None:
        """Delivery failed: the events may be claimed again (by any replica)."""
        with self._engine.begin() as connection:
            connection.execute(
                update(sink_queue)
                .where(sink_queue.c.seq.in_(seqs), sink_queue.c.lease_owner == self.owner)
                .values(
                    lease_until=None,
                    lease_owner=None,
                    attempts=sink_queue.c.attempts + literal(1),
                )
            )

    def backlog(self) -> dict[str, int]:
        """Undelivered events per registered sink."""
        with self._engine.connect() as connection:
            names = list(connection.execute(select(sinks.c.name)).scalars())
            counts = {
                row[0]: row[1]
                for row in connection.execute(
                    select(sink_queue.c.sink, func.count()).group_by(sink_queue.c.sink)
                )
            }
        return {name: int(counts.get(name, 0)) for name in names}
