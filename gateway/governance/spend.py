"""Spend records and the durable outbox that carries them to the database off the hot path.

    request ── put(record) ──> memory queue ──(writer thread, every flush_seconds)──>
               append to <data dir>/spend-outbox.jsonl, fsync ──> INSERT ... ON CONFLICT DO
               NOTHING into ``spend`` ──> truncate the file

``put`` only appends to a queue. The writer thread makes each batch durable in the local file
before it touches the database, and empties the file only after the database took every line,
so a database outage or a restart loses nothing that reached the file: the next start delivers
it. Replays are harmless because a record's id is the spend row's primary key. What is not yet in
the file (at most ``flush_seconds`` of records) is flushed on a clean shutdown; only a hard kill
of the process can lose it. The file holds ids, names, token counts and costs: never a key.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite

from gateway.metrics import METRICS
from gateway.store.tables import spend

log = logging.getLogger("sealgate.spend")

OUTBOX_FILE = "spend-outbox.jsonl"
DELIVERED = METRICS.counter("sealgate_spend_records_total", "spend records written to the database")
PENDING = METRICS.gauge(
    "sealgate_spend_outbox_bytes", "spend records in the local outbox file, not yet in the database"
)
BATCH_ROWS = 500


@dataclass(frozen=True, slots=True)
class SpendRecord:
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

    def row(self) -> dict[str, Any]:
        at = datetime.fromtimestamp(self.at, UTC)
        values = asdict(self)
        values.update(at=at, day=at.strftime("%Y-%m-%d"), tags=json.dumps(list(self.tags)))
        return values

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpendRecord:
        data["tags"] = tuple(data["tags"])
        return cls(**data)


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
        self._write_batch()
        self._deliver()
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

    # -- the writer thread ------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._flush)
            self._wake.clear()
            with self._idle:
                self._busy = True
            try:
                self._write_batch()
                if self._file_bytes and time.monotonic() >= self._next_try:
                    self._deliver()
            except Exception as exc:  # noqa: BLE001 - the writer must outlive any one failure
                log.error("spend outbox writer failed", extra={"sg_error": type(exc).__name__})
            finally:
                with self._idle:
                    self._busy = False
                    self._idle.notify_all()

    def _write_batch(self) -> None:
        lines = []
        while self._queue:
            record = self._queue.popleft()
            lines.append(json.dumps(asdict(record), separators=(",", ":")).encode() + b"\n")
        if not lines:
            return
        data = b"".join(lines)
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
                batch.append(SpendRecord.from_json(json.loads(line)))
            except (ValueError, TypeError, KeyError):
                log.warning("unreadable spend outbox line skipped")
                continue
            if len(batch) >= BATCH_ROWS:
                yield batch
                batch = []
        if batch:
            yield batch

    def _deliver(self) -> None:
        self._file_bytes = self._file.seek(0, os.SEEK_END)
        if not self._file_bytes:
            return
        try:
            count = 0
            for batch in self._records():
                self._insert(batch)
                count += len(batch)
        except Exception as exc:  # noqa: BLE001 - any database failure: keep the file, retry
            self._next_try = time.monotonic() + self._retry
            if not self._failing:
                log.warning(
                    "spend records kept in the outbox: database unavailable",
                    extra={"sg_error": type(exc).__name__},
                )
            self._failing = True
            return
        self._file.truncate(0)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file_bytes = 0
        PENDING[()] = 0
        DELIVERED[()] += count
        self.delivered += count
        if self._failing:
            log.warning("spend outbox delivered after an outage", extra={"sg_rows": count})
        self._failing = False

    def _insert(self, batch: list[SpendRecord]) -> None:
        with self._engine.begin() as connection:
            dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
            statement = dialect.insert(spend).on_conflict_do_nothing(index_elements=["id"])
            connection.execute(statement, [r.row() for r in batch])

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
