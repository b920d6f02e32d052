"""Spend records and the durable outbox that carries them to the database off the hot path.

    request ── write(record) ──> memory queue ──(writer thread, woken at once)──>
        database answers within its share of flush_seconds:
                       one transaction per batch, a replayed id skipped (SQLite: INSERT OR
                       IGNORE; PostgreSQL: COPY to a staging table, INSERT ... ON CONFLICT)
        database fails, or is still busy when its time is up:
                       append the batch to <data dir>/spend-outbox.jsonl, fsync; that file is
                       delivered in the background (sealed as spend-outbox.delivering.jsonl,
                       then removed) once the database answers again, retried every
                       retry_seconds
    ── the request's answer is sent once its record is durable

A record is durable once the database committed it or the outbox file holds it, and that happens
within ``flush_seconds`` of ``write`` whatever the database does: the database gets
``DATABASE_SHARE`` of that time, and a batch it has not committed by then goes to the file (the
database call goes on in the background, bounded by ``storage.timeout_seconds``; a record in
both places is harmless, because its id is the spend row's primary key and replays skip it). The
answer waits for it, so a hard kill loses no record of an answered request; ``put`` (records of
requests that got no answer) waits for nothing and is written with the next batch, within
``flush_seconds``. A restart delivers both files before serving. On SQLite a power loss can
also lose what its WAL had not synced (``synchronous=NORMAL``). The file holds ids, names,
token counts and costs: never a key.

In the steady state each record is written once, to the database: a second write (file first,
then database) cost the single-process gateway a measurable share of its throughput, because the
writer thread shares the interpreter lock with the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import psycopg
from sqlalchemy import Engine

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
T = TypeVar("T")
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


class _Waiting(NamedTuple):
    record: SpendRecord
    since: float  # time.monotonic() when it was put
    done: asyncio.Future[None] | None  # the answer waiting for it to be durable


class _DatabaseWorker:
    """One database call at a time, on a daemon thread of its own: the writer thread hands a
    batch over and waits only as long as the batch may wait. (Not a thread pool: its workers
    are joined at interpreter exit, and one stuck on a dead database would hold the process.)"""

    def __init__(self, done: threading.Event) -> None:
        self._done = done
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None]
        self._jobs = queue.SimpleQueue()
        self._current: Future[Any] | None = None
        self._thread: threading.Thread | None = None

    @property
    def idle(self) -> bool:
        return self._current is None or self._current.done()

    def submit(self, job: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._current = future
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="spend-database", daemon=True)
            self._thread.start()
        self._jobs.put((job, future))
        return future

    def wait_idle(self, timeout: float) -> bool:
        current = self._current
        if current is None:
            return True
        try:
            current.exception(timeout)
        except FutureTimeout:
            return False
        return True

    def close(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, future = item
            future.set_running_or_notify_cancel()
            try:
                future.set_result(job())
            except BaseException as exc:  # noqa: BLE001 - handed to the writer thread
                future.set_exception(exc)
            self._done.set()


class Outbox:
    def __init__(
        self, engine: Engine, directory: Path, flush_seconds: float, retry_seconds: float
    ) -> None:
        self._engine = engine
        self._directory = directory
        self._path = directory / OUTBOX_FILE
        self._sealed_path = directory / DELIVERING_FILE
        self._flush = flush_seconds
        self._retry = retry_seconds
        self._queue: deque[_Waiting] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._idle = threading.Condition()
        self._busy = False
        self._thread: threading.Thread | None = None
        self._database = _DatabaseWorker(self._wake)
        self._backlog: Future[int] | None = None  # the file's delivery, in the background
        self._late: Future[int] | None = None  # a batch the database did not commit in time
        self._next_try = 0.0
        self._failing = False
        self._slow = False
        self._file_bytes = 0
        self._sealed_bytes = self._sealed_path.stat().st_size if self._sealed_path.exists() else 0
        self.delivered = 0
        self._file = self._open()
        self._repair_tail()

    # -- the hot path -----------------------------------------------------------------------
    def put(self, record: SpendRecord) -> None:
        """Queue a record without waiting: it is durable within flush_seconds."""
        self._queue.append(_Waiting(record, time.monotonic(), None))

    async def write(self, record: SpendRecord) -> None:
        """Queue a record and wait until it is durable (in the database or the file): at most
        ``flush_seconds``, whatever the database does."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(record, time.monotonic(), done))
        self._wake.set()
        try:
            await asyncio.wait_for(done, self._flush + WRITE_GRACE_SECONDS)
        except TimeoutError:
            log.error("spend record not yet durable; answering anyway")

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Deliver whatever an earlier run left behind, before serving; then start writing."""
        self._deliver_now()
        self._thread = threading.Thread(target=self._run, name="spend-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Make the last records durable (database or file), give the database a last bounded
        chance to take the file, and close."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)
        self._collect()
        batch = self._drain()
        if batch:
            self._store(batch)
        if self._database.wait_idle(STOP_DELIVERY_SECONDS):
            self._collect()
            self._next_try = 0.0
            self._start_backlog()
            if self._database.wait_idle(STOP_DELIVERY_SECONDS):
                self._collect()
        self._database.close()
        self._file.close()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything put so far is in the database (True) or the time is up."""
        deadline = time.monotonic() + timeout
        self._next_try = 0.0
        while time.monotonic() < deadline:
            self._wake.set()
            with self._idle:
                self._idle.wait(0.02)
                if (
                    not self._busy
                    and not self._queue
                    and self.undelivered_bytes == 0
                    and self._database.idle
                ):
                    return True
        return False

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def undelivered_bytes(self) -> int:
        return self._file_bytes + self._sealed_bytes

    def health(self) -> dict[str, object]:
        """Always ``ok``: while the database is down the outbox is doing its job. The backlog
        (records waiting in memory, bytes waiting in the files) shows how far behind it is."""
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
        self._collect()
        batch = self._drain()
        if batch:
            self._store(batch)
        self._start_backlog()

    def _drain(self) -> list[_Waiting]:
        batch: list[_Waiting] = []
        while self._queue:
            batch.append(self._queue.popleft())
        return batch

    def _store(self, batch: list[_Waiting]) -> None:
        """Make a batch durable within its time: the database if it commits in its share of
        flush_seconds, else the file."""
        records = [w.record for w in batch]
        if self._database.idle and time.monotonic() >= self._next_try:
            job = self._database.submit(lambda: self._insert(records))
            budget = batch[0].since + self._flush * DATABASE_SHARE - time.monotonic()
            try:
                inserted = job.result(timeout=max(budget, 0.0))
            except FutureTimeout:
                self._late = job
                if not self._slow and not self._failing:
                    # Not an outage: the file takes what the database did not in time, and
                    # sealgate_spend_outbox_bytes shows how much that is.
                    log.info("spend records kept in the outbox: database slow")
                self._slow = True
            except Exception as exc:  # noqa: BLE001 - any database failure: keep it in the file
                self._failed(exc)
            else:
                self._count(inserted)
                self._release(batch)
                return
        try:
            self._append(records)
        except OSError as exc:
            # Neither the database nor the disk took it: keep it in memory for the next cycle.
            log.error("spend outbox file cannot be written", extra={"sg_error": exc.strerror})
            self._queue.extendleft(reversed(batch))
        self._release(batch)

    def _release(self, batch: list[_Waiting]) -> None:
        """Let the answers waiting for these records go (on their event loop)."""
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for waiting in batch:
            if waiting.done is not None:
                by_loop.setdefault(waiting.done.get_loop(), []).append(waiting.done)
        for loop, futures in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve, futures)

    def _collect(self) -> None:
        """Take in what the database worker finished since the last cycle."""
        late, backlog = self._late, self._backlog
        if late is not None and late.done():
            self._late = None
            error = late.exception()
            if error is not None:
                self._failed(error)
            else:
                self._count(late.result())
        if backlog is not None and backlog.done():
            self._backlog = None
            error = backlog.exception()
            if error is not None:
                self._failed(error)
            else:
                self._sealed_delivered(backlog.result())

    def _start_backlog(self) -> None:
        """Hand the file to the database worker when it is free and a try is due: the current
        file is sealed (renamed) first, so batches written meanwhile go to a new one."""
        if not self._database.idle or time.monotonic() < self._next_try:
            return
        if not self._sealed_bytes:
            if not self._file_bytes:
                return
            self._seal()
        self._backlog = self._database.submit(self._deliver_sealed)

    def _deliver_now(self) -> None:
        """Deliver both files on this thread (start-up)."""
        while True:
            if not self._sealed_bytes and self._file_bytes:
                self._seal()
            if not self._sealed_bytes:
                return
            try:
                count = self._deliver_sealed()
            except Exception as exc:  # noqa: BLE001 - any database failure: keep the files
                self._failed(exc)
                return
            self._sealed_delivered(count)

    # -- the files --------------------------------------------------------------------------
    def _open(self) -> Any:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, "a+b")

    def _append(self, records: list[SpendRecord]) -> None:
        data = b"".join(r.line() for r in records)
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file_bytes += len(data)
        PENDING[()] = self.undelivered_bytes

    def _seal(self) -> None:
        """The current file becomes the one being delivered; a new, empty one takes appends."""
        self._file.close()
        os.replace(self._path, self._sealed_path)
        self._sealed_bytes, self._file_bytes = self._file_bytes, 0
        self._file = self._open()
        directory = os.open(self._directory, os.O_RDONLY)
        try:
            os.fsync(directory)  # the new file's name survives a power loss too
        finally:
            os.close(directory)

    def _records(self, path: Path) -> Iterator[list[SpendRecord]]:
        batch: list[SpendRecord] = []
        with path.open("rb") as lines:
            for line in lines:
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

    def _deliver_sealed(self) -> int:
        """Insert everything in the sealed file (on the database worker, or at start-up)."""
        return sum(self._insert(batch) for batch in self._records(self._sealed_path))

    def _sealed_delivered(self, count: int) -> None:
        """The sealed file reached the database: remove it."""
        self._sealed_path.unlink(missing_ok=True)
        self._sealed_bytes = 0
        PENDING[()] = self.undelivered_bytes
        self._count(count)
        if self._file_bytes:
            return
        if self._failing:
            log.warning("spend outbox delivered after an outage", extra={"sg_rows": count})
        self._failing = self._slow = False

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
            driver = connection.connection.dbapi_connection
            assert isinstance(driver, psycopg.Connection)  # the only PostgreSQL driver we ship
            with driver.cursor() as cursor:
                cursor.execute(STAGING_POSTGRES)
                with cursor.copy(COPY_POSTGRES) as copy:
                    for record in batch:
                        copy.write_row(record.row(False))
                cursor.execute(INSERT_POSTGRES)
                return max(cursor.rowcount, 0)

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


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)
