"""Spend records and the durable outbox that carries them to the database off the hot path.

    request ── put(record) ──> memory queue ──(writer thread, every flush_seconds)──>
        database up:   one transaction per batch, a replayed id skipped (SQLite: INSERT OR
                       IGNORE; PostgreSQL: COPY to a staging table, INSERT ... ON CONFLICT)
        database down: append to <data dir>/spend-outbox.jsonl, fsync; retried every
                       retry_seconds; later batches join the file until it is all delivered,
                       then the file is emptied

``put`` only appends to a queue. A record is durable once the database committed it or the
outbox file holds it, at most ``flush_seconds`` after it was put: a database outage or a restart
loses nothing (the next start delivers the file before serving), and a clean shutdown writes the
last batch too. Only a hard kill (or, on SQLite, a power loss within its WAL sync) can lose the
last ``flush_seconds``. Replays are harmless: a record's id is the spend row's primary key. The
file holds ids, names, token counts and costs: never a key.

The steady state writes each record once, to the database, because a second write (file first,
then database) cost the single-process gateway a measurable share of its throughput: the writer
thread shares the interpreter lock with the event loop.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
from sqlalchemy import Engine

from gateway.metrics import METRICS

log = logging.getLogger("sealgate.spend")

OUTBOX_FILE = "spend-outbox.jsonl"
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

    def line(self) -> bytes:
        """One outbox line: the fields as a JSON array, in declaration order."""
        return json.dumps(self, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> SpendRecord:
        values = json.loads(line)
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
        )


FIELDS = SpendRecord._fields
# Written out in full (no string building): the values always go as driver parameters.
INSERT_SQLITE = (
    "INSERT OR IGNORE INTO spend (id, at, day, key_id, team_id, user_id, project, tags, model, "
    "deployment, prompt_tokens, completion_tokens, cached_tokens, cost_nanos, latency_ms, status) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# PostgreSQL: COPY the batch into a temporary table, then one INSERT ... ON CONFLICT from it. COPY
# costs the writer thread about half the CPU per row of a row-by-row INSERT, and the conflict
# clause keeps replays harmless, which COPY alone cannot.
STAGING_POSTGRES = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS spend_incoming (LIKE spend) ON COMMIT DELETE ROWS"
)
COPY_POSTGRES = (
    "COPY spend_incoming (id, at, day, key_id, team_id, user_id, project, tags, model, "
    "deployment, prompt_tokens, completion_tokens, cached_tokens, cost_nanos, latency_ms, status) "
    "FROM STDIN"
)
INSERT_POSTGRES = "INSERT INTO spend SELECT * FROM spend_incoming ON CONFLICT (id) DO NOTHING"


class Outbox:
    def __init__(
        self, engine: Engine, directory: Path, flush_seconds: float, retry_seconds: float
    ) -> None:
        self._engine = engine
        self._path = directory / OUTBOX_FILE
        self._flush = flush_seconds
        self._retry = retry_seconds
        self._queue: deque[SpendRecord] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._idle = threading.Condition()
        self._busy = False
        self._thread: threading.Thread | None = None
        self._next_try = 0.0
        self._failing = False
        self._file_bytes = 0
        self.delivered = 0
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "a+b")
        self._repair_tail()

    # -- the hot path -----------------------------------------------------------------------
    def put(self, record: SpendRecord) -> None:
        self._queue.append(record)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._deliver()  # whatever an earlier run left behind, before serving
        self._thread = threading.Thread(target=self._run, name="spend-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)
        self._next_try = 0.0
        self._cycle()  # the last records: to the database, or to the file if it is down
        self._file.close()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything put so far is in the database (True) or the time is up."""
        deadline = time.monotonic() + timeout
        self._next_try = 0.0
        while time.monotonic() < deadline:
            self._wake.set()
            with self._idle:
                self._idle.wait(0.02)
                if not self._busy and not self._queue and self._file_bytes == 0:
                    return True
        return False

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def undelivered_bytes(self) -> int:
        return self._file_bytes

    def health(self) -> dict[str, object]:
        """Always ``ok``: while the database is down the outbox is doing its job. The backlog
        (records waiting in memory, bytes waiting in the file) shows how far behind it is."""
        return {"ok": True, "queued": self.queued, "undelivered_bytes": self.undelivered_bytes}

    # -- the writer thread ------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._flush)
            self._wake.clear()
            with self._idle:
                self._busy = True
            try:
                self._cycle()
            except Exception as exc:  # noqa: BLE001 - the writer must outlive any one failure
                log.error("spend outbox writer failed", extra={"sg_error": type(exc).__name__})
            finally:
                with self._idle:
                    self._busy = False
                    self._idle.notify_all()

    def _cycle(self) -> None:
        """Deliver the queued records. While the database answers they go straight to it (its
        commit is what makes them durable); when it does not, the batch is appended to the
        outbox file and fsync'd, and from then on every batch joins the file until the whole
        file has been delivered, so records reach the database in order and none is lost."""
        batch = self._drain()
        if self._file_bytes:
            self._append(batch)
            if time.monotonic() >= self._next_try:
                self._deliver()
            return
        if not batch:
            return
        try:
            self._insert(batch)
        except Exception as exc:  # noqa: BLE001 - any database failure: keep it in the file
            self._append(batch)
            self._failed(exc)
        else:
            DELIVERED[()] += len(batch)
            self.delivered += len(batch)

    def _drain(self) -> list[SpendRecord]:
        batch: list[SpendRecord] = []
        while self._queue:
            batch.append(self._queue.popleft())
        return batch

    def _append(self, batch: list[SpendRecord]) -> None:
        if not batch:
            return
        data = b"".join(r.line() for r in batch)
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file_bytes += len(data)
        PENDING[()] = self._file_bytes

    def _records(self) -> Iterator[list[SpendRecord]]:
        self._file.seek(0)
        batch: list[SpendRecord] = []
        for line in self._file:
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

    def _deliver(self) -> None:
        """Deliver everything in the file (at start-up, at shutdown, after an outage)."""
        self._file_bytes = self._file.seek(0, os.SEEK_END)
        if not self._file_bytes:
            return
        try:
            count = 0
            for batch in self._records():
                self._insert(batch)
                count += len(batch)
        except Exception as exc:  # noqa: BLE001 - any database failure: keep the file, retry
            self._failed(exc)
            return
        if self._failing:
            log.warning("spend outbox delivered after an outage", extra={"sg_rows": count})
        self._delivered(count)

    def _failed(self, exc: BaseException) -> None:
        self._next_try = time.monotonic() + self._retry
        if not self._failing:
            log.warning(
                "spend records kept in the outbox: database unavailable",
                extra={"sg_error": type(exc).__name__},
            )
        self._failing = True

    def _delivered(self, count: int) -> None:
        """The whole file reached the database: empty it."""
        self._file.truncate(0)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file_bytes = 0
        PENDING[()] = 0
        DELIVERED[()] += count
        self.delivered += count
        self._failing = False

    def _insert(self, batch: list[SpendRecord]) -> None:
        """One transaction per batch; a replayed record (same id) is skipped."""
        with self._engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql(INSERT_SQLITE, [r.row(True) for r in batch])
                return
            driver = connection.connection.dbapi_connection
            assert isinstance(driver, psycopg.Connection)  # the only PostgreSQL driver we ship
            with driver.cursor() as cursor:
                cursor.execute(STAGING_POSTGRES)
                with cursor.copy(COPY_POSTGRES) as copy:
                    for record in batch:
                        copy.write_row(record.row(False))
                cursor.execute(INSERT_POSTGRES)

    def _repair_tail(self) -> None:
        """Cut a half-written last line (the process died mid-append) so new lines start clean."""
        size = self._file.seek(0, os.SEEK_END)
        if size == 0:
            return
        self._file.seek(max(0, size - 65536))
        tail = self._file.read()
        if tail.endswith(b"\n"):
            self._file_bytes = size
            return
        cut = tail.rfind(b"\n")
        keep = size - len(tail) + cut + 1 if cut >= 0 else 0
        log.warning("half-written spend outbox line dropped", extra={"sg_bytes": size - keep})
        self._file.truncate(keep)
        self._file_bytes = keep
