"""Spend records and the durable outbox that carries them to the database off the hot path.

    request ── write(record) ──> memory queue ──> database thread, woken at once when idle (a
                                                  busy one looks again after its batch): everything
                                                  queued so far in one transaction (group commit)
                                                  SQLite: INSERT OR IGNORE; PostgreSQL: INSERT
                                                  ... ON CONFLICT, pipelined (a large batch:
                                                  COPY to a staging table, then INSERT)
            keeper thread, every flush_seconds/4: a batch the database has not committed by its
            deadline, records queued behind it, and every record while the database fails,
            go to <data dir>/spend-outbox.jsonl, fsync'd
            database thread, between batches, once the database answers again: the file is
            sealed (spend-outbox.delivering.jsonl), delivered and removed; retried every
            retry_seconds
    ── the request's answer is sent once its record is durable (``write`` returns)

A record is durable once the database committed it or the outbox file holds it, and that happens
within ``flush_seconds`` of ``write`` whatever the database does: the database gets
``DATABASE_SHARE`` of that time, the keeper takes over after it. The database call goes on in the
background, bounded by ``storage.timeout_seconds``; a record that ends up both committed and in
the file is harmless, because its id is the spend row's primary key and replays skip it. The
answer waits for it, so a hard kill loses no record of an answered request; ``put`` (records of
requests that got no answer) waits for nothing and is written the same way. A restart delivers
both files before serving. On SQLite a power loss can also lose what its WAL had not synced
(``synchronous=NORMAL``). The file holds ids, names, token counts and costs: never a key.

In the steady state each record is written once, to the database: a second write (file first,
then database) cost the single-process gateway a measurable share of its throughput, because the
writer threads share the interpreter lock with the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Engine

from gateway.governance.outbox_file import OutboxFile
from gateway.metrics import METRICS

log = logging.getLogger("sealgate.spend")

OUTBOX_FILE = "spend-outbox.jsonl"
DELIVERING_FILE = "spend-outbox.delivering.jsonl"
# The share of flush_seconds a batch waits for the database before it goes to the file; the rest
# is for the file's write and fsync (about 3 ms on the development machine's disk).
DATABASE_SHARE = 0.75
# How long shutdown waits for the database to take the file, after the last batch is durable.
STOP_DELIVERY_SECONDS = 5.0
# The longest an answer waits for its record beyond flush_seconds (a disk that hangs).
WRITE_GRACE_SECONDS = 1.0
DELIVERED = METRICS.counter("sealgate_spend_records_total", "spend records written to the database")
PENDING = METRICS.gauge(
    "sealgate_spend_outbox_bytes", "spend records in the local outbox file, not yet in the database"
)
BATCH_ROWS = 500


class SpendRecord(NamedTuple):
    id: str
    at: float  # unix time
    key_id: str
    team_id: str | None
    user_id: str | None
    project: str | None
    tags: tuple[str, ...]
    model: str
    deployment: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_nanos: int
    latency_ms: float
    status: str
    # What the guardrails found (gateway.guardrails): detector names and counts, ``card=1``;
    # never the text they found.
    guardrails: str = ""
    # Prompt tokens the provider wrote to its prompt cache (Bedrock, Anthropic), counted in
    # prompt_tokens too (issue 15).
    cache_write_tokens: int = 0

    def line(self) -> bytes:
        """One outbox line: the fields as a JSON array, in declaration order."""
        return json.dumps(self, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> SpendRecord:
        values = json.loads(line)
        if isinstance(values, list) and len(values) == len(FIELDS) - 2:
            values.append("")  # written before the record had guardrail evidence
        if isinstance(values, list) and len(values) == len(FIELDS) - 1:
            values.append(0)  # written before the record had cache writes
        if not isinstance(values, list) or len(values) != len(FIELDS):
            raise ValueError("not a spend record")
        data = dict(zip(FIELDS, values, strict=True))
        data["tags"] = tuple(data["tags"])
        return cls(**data)

    def row(self, sqlite: bool) -> tuple[Any, ...]:
        """The spend table's columns, in the INSERT statements' order, for the driver."""
        at = datetime.fromtimestamp(self.at, UTC)
        day = f"{at.year:04}-{at.month:02}-{at.day:02}"
        when: Any = at
        if sqlite:  # SQLAlchemy's SQLite DateTime format, so rows read back the same way
            when = f"{day} {at.hour:02}:{at.minute:02}:{at.second:02}.{at.microsecond:06}"
        return (
            self.id,
            when,
            day,
            self.key_id,
            self.team_id,
            self.user_id,
            self.project,
            json.dumps(list(self.tags)) if self.tags else "[]",
            self.model,
            self.deployment,
            self.prompt_tokens,
            self.completion_tokens,
            self.cached_tokens,
            self.cost_nanos,
            self.latency_ms,
            self.status,
            self.guardrails,
            self.cache_write_tokens,
        )


FIELDS = SpendRecord._fields
# Written out in full (no string building): the values always go as driver parameters.
INSERT_SQLITE = (
    "INSERT OR IGNORE INTO spend (id, at, day, key_id, team_id, user_id, project, tags, model, "
    "deployment, prompt_tokens, completion_tokens, cached_tokens, cost_nanos, latency_ms, status, "
    "guardrails, cache_write_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# PostgreSQL, a small batch (a group commit of the requests answered meanwhile): one INSERT per
# row, pipelined by psycopg's executemany, so one round trip. A large one (the file's backlog):
# COPY the batch into a temporary table, then one INSERT ... ON CONFLICT from it. COPY costs the
# writer thread about half the CPU per row of a row-by-row INSERT, and the conflict clause keeps
# replays harmless, which COPY alone cannot.
INSERT_POSTGRES_ROW = (
    "INSERT INTO spend (id, at, day, key_id, team_id, user_id, project, tags, model, "
    "deployment, prompt_tokens, completion_tokens, cached_tokens, cost_nanos, latency_ms, status, "
    "guardrails, cache_write_tokens) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (id) DO NOTHING"
)
SMALL_BATCH_ROWS = 32
STAGING_POSTGRES = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS spend_incoming (LIKE spend) ON COMMIT DELETE ROWS"
)
COPY_POSTGRES = (
    "COPY spend_incoming (id, at, day, key_id, team_id, user_id, project, tags, model, "
    "deployment, prompt_tokens, completion_tokens, cached_tokens, cost_nanos, latency_ms, status, "
    "guardrails, cache_write_tokens) FROM STDIN"
)
INSERT_POSTGRES = "INSERT INTO spend SELECT * FROM spend_incoming ON CONFLICT (id) DO NOTHING"


class _Waiting(NamedTuple):
    record: SpendRecord
    since: float  # time.monotonic() when it was put
    done: asyncio.Future[None] | None  # the answer waiting for it to be durable


@dataclass(eq=False)
class _Batch:
    """Records handed to the database. Exactly one of the database thread (committed, or
    failed) and the keeper (not committed in time) makes them durable and lets their answers go:
    ``settled`` says it happened, under the outbox's lock."""

    waiting: list[_Waiting]
    deadline: float
    settled: bool = False


class Outbox:
    def __init__(
        self, engine: Engine, directory: Path, flush_seconds: float, retry_seconds: float
    ) -> None:
        self._engine = engine
        self._flush = flush_seconds
        self._share = flush_seconds * DATABASE_SHARE
        self._tick = flush_seconds * (1 - DATABASE_SHARE)
        self._retry = retry_seconds
        self._queue: deque[_Waiting] = deque()
        self._wake = threading.Event()
        self._idle = True  # the database thread waits for a wake (it is not writing a batch)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the batch in flight, the files and the state below
        self._inflight: _Batch | None = None
        self._delivering = False  # the files are being delivered (on some thread)
        self._threads: list[threading.Thread] = []
        self._next_try = 0.0
        self._failing = False
        self._slow = False
        self.delivered = 0
        self._file = OutboxFile(directory, OUTBOX_FILE, DELIVERING_FILE)

    # -- the hot path -----------------------------------------------------------------------
    def put(self, record: SpendRecord) -> None:
        """Queue a record without waiting: it is durable within flush_seconds."""
        self._queue.append(_Waiting(record, time.monotonic(), None))
        self._nudge()

    async def write(self, record: SpendRecord) -> None:
        """Queue a record and wait until it is durable (in the database or the file): at most
        ``flush_seconds``, whatever the database does."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.append(_Waiting(record, time.monotonic(), done))
        self._nudge()
        # A timer rather than asyncio.wait_for, which adds a waiter future and a done callback
        # (issue 16: half the cost of the wait on a cache hit); cancelling still cancels ``done``.
        late = loop.call_later(self._flush + WRITE_GRACE_SECONDS, _expire, done)
        try:
            await done
        except TimeoutError:
            log.error("spend record not yet durable; answering anyway")
        finally:
            late.cancel()

    def _nudge(self) -> None:
        """Wake the database thread, unless it is busy or a wake is already pending. The record
        was queued first, so a thread that clears the event after this check still drains it,
        and a busy thread looks at the queue again before it waits (``_run_database``). Event.set
        takes the event's lock and notifies even when it is set already (issue 23: that was 4.6%
        of the spine's CPU in py-spy, one lock round per request); a wake while the thread is
        writing a batch was one notify per request again (issue 16: 6.8% of a cache hit)."""
        if self._idle and not self._wake.is_set():
            self._wake.set()

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Deliver whatever an earlier run left behind, before serving; then start writing."""
        self._deliver_backlog(until_empty=True)
        for target, name in ((self._run_database, "spend-database"), (self._keep, "spend-keeper")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Make the last records durable, give the database one last bounded chance to take
        the file (unless it is failing or stuck), and close."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(STOP_DELIVERY_SECONDS)
        with self._lock:
            stuck = self._inflight is not None or self._delivering
            if self._inflight is not None:
                self._spill(self._inflight)
            self._spill_queue()
        if not stuck and time.monotonic() >= self._next_try:
            self._deliver_backlog(until_empty=True)
        with self._lock:
            self._file.close()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything put so far is in the database (True) or the time is up."""
        deadline = time.monotonic() + timeout
        self._next_try = 0.0
        while time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.02)
            with self._lock:
                if not self._queue and self._inflight is None and not self.undelivered_bytes:
                    return True
        return False

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def undelivered_bytes(self) -> int:
        return self._file.undelivered_bytes

    def health(self) -> dict[str, object]:
        """Always ``ok``: while the database is down the outbox is doing its job. The backlog
        (records waiting in memory, bytes waiting in the files) shows how far behind it is."""
        return {"ok": True, "queued": self.queued, "undelivered_bytes": self.undelivered_bytes}

    # -- the database thread ----------------------------------------------------------------
    def _run_database(self) -> None:
        """Woken by a write while it waits, or finding records queued while it wrote the last
        batch: the records queued so far go to the database in one transaction (group commit);
        when it is idle, the file's backlog."""
        while not self._stop.is_set():
            # Idle first, then look: a record queued after the look sees the thread idle and
            # wakes it; one queued before it is found here (nothing waits for a wake it missed).
            self._idle = True
            if not self._queue or time.monotonic() < self._next_try:
                self._wake.wait(self._flush)
            self._idle = False
            self._wake.clear()
            try:
                if time.monotonic() < self._next_try:
                    continue  # failing: the keeper writes to the file meanwhile
                self._insert_queued()
                if self.undelivered_bytes and time.monotonic() >= self._next_try:
                    self._deliver_backlog()
            except Exception as exc:  # noqa: BLE001 - the writer must outlive any one failure
                log.error("spend outbox writer failed", extra={"sg_error": type(exc).__name__})

    def _insert_queued(self) -> None:
        with self._lock:
            waiting = self._drain()
            if not waiting:
                return
            batch = _Batch(waiting, waiting[0].since + self._share)
            self._inflight = batch
        try:
            inserted = self._insert([w.record for w in waiting])
        except Exception as exc:  # noqa: BLE001 - any database failure: keep it in the file
            with self._lock:
                self._inflight = None
                self._failed(exc)
                self._spill(batch)
            return
        self._count(inserted)
        with self._lock:
            self._inflight = None
            if not batch.settled:
                batch.settled = True
                _release(batch.waiting)

    # -- the keeper thread ------------------------------------------------------------------
    def _keep(self) -> None:
        """Every ``flush_seconds / 4``: the batch the database has not committed by its
        deadline, and records queued too long behind it (or while it fails), go to the file."""
        while not self._stop.wait(self._tick):
            try:
                now = time.monotonic()
                with self._lock:
                    batch = self._inflight
                    if batch is not None and not batch.settled and now >= batch.deadline:
                        if not self._slow and not self._failing:
                            # Not an outage: the file takes what the database did not in
                            # time, and sealgate_spend_outbox_bytes shows how much that is.
                            log.info("spend records kept in the outbox: database slow")
                        self._slow = True
                        self._spill(batch)
                    queued = self._queue[0].since if self._queue else None
                    behind = queued is not None and now >= queued + self._share
                    if behind or (queued is not None and now < self._next_try):
                        self._spill_queue()
            except Exception as exc:  # noqa: BLE001 - the keeper must outlive any one failure
                log.error("spend outbox keeper failed", extra={"sg_error": type(exc).__name__})

    # -- durable in the file (all under the lock) ------------------------------------------
    def _drain(self) -> list[_Waiting]:
        batch: list[_Waiting] = []
        while self._queue:
            batch.append(self._queue.popleft())
        return batch

    def _spill(self, batch: _Batch) -> None:
        if batch.settled:
            return
        batch.settled = True
        self._append(batch.waiting)

    def _spill_queue(self) -> None:
        waiting = self._drain()
        if waiting:
            self._append(waiting)

    def _append(self, waiting: list[_Waiting]) -> None:
        try:
            self._file.append(b"".join(w.record.line() for w in waiting))
        except OSError as exc:
            # Neither the database nor the disk took them: back to memory for the next try.
            log.error("spend outbox file cannot be written", extra={"sg_error": exc.strerror})
            self._queue.extendleft(reversed([w._replace(done=None) for w in waiting]))
        else:
            PENDING[()] = self.undelivered_bytes
        _release(waiting)

    # -- the file's delivery ---------------------------------------------------------------
    def _deliver_backlog(self, until_empty: bool = False) -> None:
        """Deliver the file to the database: the current file is sealed (renamed) first, so
        records that go to the file meanwhile go to a new one. On the database thread, one
        sealed file at a time, between batches; at start-up and shutdown, until both are
        empty."""
        while True:
            with self._lock:
                if not self._file.sealed_bytes and self._file.file_bytes:
                    self._file.seal()
                if not self._file.sealed_bytes:
                    return
                self._delivering = True
            try:
                count = sum(self._insert(batch) for batch in self._records())
            except Exception as exc:  # noqa: BLE001 - any database failure: keep the files
                with self._lock:
                    self._delivering = False
                    self._failed(exc)
                return
            with self._lock:
                self._delivering = False
                self._file.delivered()
                PENDING[()] = self.undelivered_bytes
                self._count(count)
                if not self._file.file_bytes:
                    if self._failing:
                        log.warning(
                            "spend outbox delivered after an outage", extra={"sg_rows": count}
                        )
                    self._failing = self._slow = False
                    return
            if not until_empty:
                return

    def _records(self) -> Iterator[list[SpendRecord]]:
        batch: list[SpendRecord] = []
        for line in self._file.sealed_lines():
            try:
                batch.append(SpendRecord.from_line(line))
            except (ValueError, TypeError, KeyError):
                log.warning("unreadable spend outbox line skipped")
                continue
            if len(batch) >= BATCH_ROWS:
                yield batch
                batch = []
        if batch:
            yield batch

    def _count(self, inserted: int) -> None:
        DELIVERED[()] += inserted
        self.delivered += inserted

    def _failed(self, exc: BaseException) -> None:
        self._next_try = time.monotonic() + self._retry
        if not self._failing:
            log.warning(
                "spend records kept in the outbox: database unavailable",
                extra={"sg_error": type(exc).__name__},
            )
        self._failing = True

    # -- the database -----------------------------------------------------------------------
    def _insert(self, batch: list[SpendRecord]) -> int:
        """One transaction per batch; a replayed record (same id) is skipped. Returns how many
        rows were new."""
        with self._engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                result = connection.exec_driver_sql(INSERT_SQLITE, [r.row(True) for r in batch])
                return max(result.rowcount, 0)
            import psycopg  # issue 23: the PostgreSQL driver only for a PostgreSQL store

            driver = connection.connection.dbapi_connection
            assert isinstance(driver, psycopg.Connection)  # the only PostgreSQL driver we ship
            with driver.cursor() as cursor:
                if len(batch) <= SMALL_BATCH_ROWS:
                    cursor.executemany(INSERT_POSTGRES_ROW, [r.row(False) for r in batch])
                    return max(cursor.rowcount, 0)
                cursor.execute(STAGING_POSTGRES)
                with cursor.copy(COPY_POSTGRES) as copy:
                    for record in batch:
                        copy.write_row(record.row(False))
                cursor.execute(INSERT_POSTGRES)
                return max(cursor.rowcount, 0)


def _release(waiting: list[_Waiting]) -> None:
    """Let the answers waiting for these records go, on their event loops."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for entry in waiting:
        if entry.done is not None:
            by_loop.setdefault(entry.done.get_loop(), []).append(entry.done)
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_resolve, futures)


def _expire(done: asyncio.Future[None]) -> None:
    """The answer stops waiting for a record that is not durable in time (a disk that hangs)."""
    if not done.done():
        done.set_exception(TimeoutError())


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)
