"""Events that come at request rate (access events) on their way into the durable sink queue.

    request done ── put(type, id, data) ──> memory (a deque: no lock, no I/O on the event loop)
    writer thread, every FLUSH_SECONDS or once BATCH events wait:
        the outbox file's backlog first (below), then everything waiting, queued for every
        registered sink in one transaction per BATCH (``SinkQueue.enqueue_many``: INSERT ...
        SELECT ... ON CONFLICT DO NOTHING)
        the database fails: the batch goes to the outbox file, and the database is tried again
        with backoff
    keeper thread, every FLUSH_SECONDS: while the database fails, while a database call has
        taken longer than STALL_SECONDS, or once more than BEHIND events wait, what waits in
        memory goes to <data dir>/sink-events-outbox.jsonl, fsync'd (a line per event: type,
        id, data)
    writer thread, once the database answers again, and ``start`` before serving: the file is
        sealed (sink-events-outbox.delivering.jsonl), queued and removed (``outbox_file.py``,
        shared with the spend outbox)
    stop: what waits in memory is queued, or goes to the file (within the storage timeout)

Once in the queue an event is as safe as a spend record's queue row: each sink drains it, and
an outage of a sink's receiver or a restart of the gateway loses nothing and sends nothing twice
(its id is unique per sink; a batch or a file queued again after an unclear failure, or after a
restart, inserts nothing again while its rows are still queued). Before that, an event lives in
this process's memory for at most about FLUSH_SECONDS while the database answers; a hard kill
(SIGKILL, power) in that window loses it, unlike a spend record, which the answer waits for.
While the database is down or stalled, events are in memory for at most about FLUSH_SECONDS
(STALL_SECONDS) before the file holds them, and the file survives a restart or a crash. Only when
the file cannot be written either (disk full, read-only) do up to MAX_WAITING events wait here;
beyond that new ones are dropped, counted in ``sealgate_sink_events_dropped_total`` and logged,
never silently. The file holds what an access event holds: ids, names, counts, costs; never
content, never a key.

Two cases are at least once rather than exactly once, with the same id, which receivers can drop
(as after a replica that died between a receiver's answer and its ``ack``, ``sink_queue.py``):
a commit whose answer was lost (the connection broke during COMMIT) leaves the batch both queued
and in the file, and if a sink delivers and acknowledges it (its rows deleted) before the file
is queued, the file queues it again; and a process that dies while queuing the sealed file
queues it from its first line at the next start (within one run, a retry goes on where the
failed try stopped), again after a sink may have acknowledged some of it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gateway.governance.outbox_file import OutboxFile
from gateway.governance.sink_queue import SinkQueue
from gateway.metrics import METRICS

log = logging.getLogger("sealgate.sinks")

OUTBOX_FILE = "sink-events-outbox.jsonl"
DELIVERING_FILE = "sink-events-outbox.delivering.jsonl"
FLUSH_SECONDS = 0.05
BATCH = 500
# More than this waiting in memory: the database is behind, and the file takes them meanwhile.
BEHIND = 10 * BATCH
# A database call longer than this: what waits behind it goes to the file.
STALL_SECONDS = 0.5
MAX_WAITING = 100_000
RETRY_SECONDS = 0.5
RETRY_MAX_SECONDS = 10.0

Waiting = tuple[str, str, Mapping[str, Any]]

DROPPED = METRICS.counter(
    "sealgate_sink_events_dropped_total",
    "events not queued for the sinks: neither the database nor the outbox file took them, by type",
)
PENDING = METRICS.gauge(
    "sealgate_sink_events_outbox_bytes",
    "events in the local outbox file, not yet in the sink queue",
)


def line(event: Waiting) -> bytes:
    """One outbox line: ``{"type", "id", "data"}``."""
    type_, event_id, data = event
    body = {"type": type_, "id": event_id, "data": dict(data)}
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def from_line(text: bytes) -> Waiting:
    body = json.loads(text)
    if not isinstance(body, dict):
        raise ValueError("not an event")
    type_, event_id, data = body["type"], body["id"], body["data"]
    if not (isinstance(type_, str) and isinstance(event_id, str) and isinstance(data, dict)):
        raise ValueError("not an event")
    return type_, event_id, data


class EventBatcher:
    def __init__(
        self,
        queue: SinkQueue,
        directory: Path,
        stop_seconds: float,
        flush_seconds: float = FLUSH_SECONDS,
        max_waiting: int = MAX_WAITING,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self._queue = queue
        self._waiting: deque[Waiting] = deque()
        self._flush = flush_seconds
        self._max = max_waiting
        self._stop_seconds = stop_seconds
        self._retry = retry_seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._full = False
        # The waiting deque's left end, the file, and the state below (put appends on the right).
        self._lock = threading.Lock()
        self._directory = directory
        self._file: OutboxFile | None = None  # opened by start (or a stop without one)
        self._inflight: list[Waiting] | None = None  # the batch in the database call
        self._calling_since: float | None = None  # when the writer's database call began
        self._failing: str | None = None  # why the database failed, until it takes a batch
        self._disk_failing = False
        self._disk_next_try = 0.0
        self._next_try = 0.0
        self._wait = retry_seconds
        self._sealed_done = 0  # lines of the sealed file already queued (by this process)
        self._threads = [
            threading.Thread(target=self._run, name="sealgate-sink-events", daemon=True),
            threading.Thread(target=self._keep, name="sealgate-sink-events-keeper", daemon=True),
        ]

    def put(self, type_: str, event_id: str, data: Mapping[str, Any]) -> None:
        """Queue an event for every sink (called on the event loop: no I/O)."""
        waiting = self._waiting
        if len(waiting) >= self._max:
            # The new one, not the oldest: only the threads take from the left end.
            DROPPED[(("type", type_),)] += 1
            if not self._full:
                self._full = True
                log.warning(
                    "sink events waiting for the database exceed the limit: new ones dropped",
                    extra={"sg_limit": self._max},
                )
            return
        self._full = False
        waiting.append((type_, event_id, data))
        if len(waiting) == BATCH:
            self._wake.set()

    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def undelivered_bytes(self) -> int:
        return self._file.undelivered_bytes if self._file is not None else 0

    def start(self) -> None:
        """Queue what an earlier run left in the file (blocking: before serving, from a
        thread); then start writing. A database that fails now leaves the file for later."""
        try:
            self._deliver_file()
        except Exception as exc:  # noqa: BLE001 - the file stays; the writer tries again
            self._failed(exc)
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Queue what waits, or keep it in the file (blocking: call it from a thread); end the
        threads."""
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(self._stop_seconds)
        with self._lock:
            if self._inflight is not None:  # the writer is stuck in the database: keep it
                self._spill(self._inflight)
                self._inflight = None
            stuck = self._threads[0].is_alive()
        if not stuck and self._failing is None:
            deadline = time.monotonic() + self._stop_seconds
            try:
                while self._waiting and time.monotonic() < deadline:
                    self._write()
            except Exception as exc:  # noqa: BLE001 - what is left goes to the file below
                self._failed(exc)
        with self._lock:
            self._spill(self._drain())
            if self._waiting:
                log.error(
                    "sink events not queued at shutdown: neither the database nor the file took "
                    "them",
                    extra={"sg_events": len(self._waiting)},
                )
            self._outbox().close()
            self._file = None

    # -- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._flush)
            self._wake.clear()
            if time.monotonic() < self._next_try:
                continue  # failing: the keeper puts what comes meanwhile in the file
            try:
                self._deliver_file()
                while self._waiting and not self._stopping.is_set():
                    self._write()
            except Exception as exc:  # noqa: BLE001 - kept in the file and retried
                self._failed(exc)
                continue
            self._recovered()

    def _write(self) -> None:
        """One batch into the queue; the database fails: into the file, and the error raised."""
        with self._lock:
            batch = self._take(BATCH)
            if not batch:  # the keeper took them to the file meanwhile
                return
            self._inflight = batch
        try:
            self._call(batch)
        except Exception:
            with self._lock:
                if self._inflight is batch:  # not kept by stop meanwhile
                    self._spill(batch)
                self._inflight = None
            raise
        with self._lock:
            self._inflight = None

    def _deliver_file(self) -> None:
        """Queue the file's events, sealed first so new ones go to a new file, until both are
        empty; a database failure raises, and the next try goes on where this one stopped."""
        while True:
            with self._lock:
                file = self._outbox()
                if not file.sealed_bytes and file.file_bytes:
                    file.seal()
                    self._sealed_done = 0
                if not file.sealed_bytes:
                    return
            for count, batch in self._file_batches(file, self._sealed_done):
                self._call(batch)
                self._sealed_done = count
            with self._lock:
                file.delivered()
                self._sealed_done = 0
                PENDING[()] = file.undelivered_bytes
            if self._stopping.is_set():
                return

    def _file_batches(self, file: OutboxFile, skip: int) -> Iterator[tuple[int, list[Waiting]]]:
        """The sealed file's events after the first ``skip`` lines, in batches, each with the
        count of lines read through it."""
        batch: list[Waiting] = []
        count = 0
        for text in file.sealed_lines():
            count += 1
            if count <= skip:
                continue
            try:
                batch.append(from_line(text))
            except (ValueError, TypeError, KeyError):
                log.warning("unreadable sink events outbox line skipped")
            if len(batch) >= BATCH:
                yield count, batch
                batch = []
        if batch:
            yield count, batch

    def _call(self, batch: list[Waiting]) -> None:
        self._calling_since = time.monotonic()
        try:
            self._queue.enqueue_many(batch)
        finally:
            self._calling_since = None

    def _failed(self, exc: BaseException) -> None:
        reason = type(exc).__name__
        if self._failing is None:
            log.warning(
                "sink events kept in the outbox file: the database failed; retrying",
                extra={"sg_error": reason, "sg_events": len(self._waiting)},
            )
            self._wait = self._retry
        else:
            self._wait = min(self._wait * 2, RETRY_MAX_SECONDS)
        self._failing = reason
        self._next_try = time.monotonic() + self._wait

    def _recovered(self) -> None:
        if self._failing is not None:
            log.warning("sink events queued again")
            self._failing = None

    # -- the keeper thread -------------------------------------------------------------------
    def _keep(self) -> None:
        """Every flush_seconds: what waits in memory goes to the file while the database fails,
        while a call of the writer's takes longer than STALL_SECONDS, or once it is behind."""
        while not self._stopping.wait(self._flush):
            now, since = time.monotonic(), self._calling_since
            stalled = since is not None and now - since >= STALL_SECONDS
            if self._failing is None and not stalled and len(self._waiting) <= BEHIND:
                continue
            if self._disk_failing and now < self._disk_next_try:
                continue  # not every tick: each try writes out everything that waits
            try:
                with self._lock:
                    self._spill(self._drain())
            except Exception as exc:  # noqa: BLE001 - the keeper must outlive any one failure
                log.error("sink events keeper failed", extra={"sg_error": type(exc).__name__})

    # -- memory and the file (under the lock) ------------------------------------------------
    def _outbox(self) -> OutboxFile:
        if self._file is None:
            self._file = OutboxFile(self._directory, OUTBOX_FILE, DELIVERING_FILE)
            PENDING[()] = self._file.undelivered_bytes
        return self._file

    def _take(self, limit: int) -> list[Waiting]:
        waiting = self._waiting
        return [waiting.popleft() for _ in range(min(limit, len(waiting)))]

    def _drain(self) -> list[Waiting]:
        return self._take(len(self._waiting))

    def _spill(self, batch: list[Waiting]) -> None:
        if not batch:
            return
        file = self._outbox()
        try:
            file.append(b"".join(line(event) for event in batch))
        except OSError as exc:
            # Neither the database nor the disk took them: back to memory for the next try.
            if not self._disk_failing:
                log.error(
                    "sink events outbox file cannot be written: kept in memory",
                    extra={"sg_error": exc.strerror or type(exc).__name__},
                )
            self._disk_failing = True
            self._disk_next_try = time.monotonic() + self._retry
            self._waiting.extendleft(reversed(batch))
            return
        if self._disk_failing:
            log.warning("sink events outbox file written again")
            self._disk_failing = False
        PENDING[()] = file.undelivered_bytes
