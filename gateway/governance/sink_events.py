"""Events that come at request rate (access events) on their way into the durable sink queue.

    request done ── put(type, id, data) ──> memory (a deque: no lock, no I/O on the event loop)
    writer thread, every FLUSH_SECONDS or once BATCH events wait:
        everything waiting, queued for every registered sink in one transaction
        (``SinkQueue.enqueue_many``: INSERT ... SELECT ... ON CONFLICT DO NOTHING)
        the database fails: the events stay, and the write is tried again with backoff
    stop: what is waiting is written (within the storage timeout) before the process ends

Once in the queue an event is as safe as a spend record's queue row: each sink drains it, and
an outage of a sink's receiver or a restart of the gateway loses nothing and sends nothing
twice (its id is unique per sink; a write retried after an unclear failure inserts nothing
again). Before that, an event lives in this process's memory for at most about FLUSH_SECONDS
while the database answers; a hard kill (SIGKILL, power) in that window loses it, unlike a spend
record, which the answer waits for. While the database is down, up to MAX_WAITING events wait
here; beyond that new ones are dropped, counted in ``sealgate_sink_events_dropped_total`` and
logged, never silently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from gateway.governance.sink_queue import SinkQueue
from gateway.metrics import METRICS

log = logging.getLogger("sealgate.sinks")

FLUSH_SECONDS = 0.05
BATCH = 500
MAX_WAITING = 100_000
RETRY_SECONDS = 0.5
RETRY_MAX_SECONDS = 10.0

DROPPED = METRICS.counter(
    "sealgate_sink_events_dropped_total",
    "events not queued for the sinks: more waited for the database than it holds, by type",
)


class EventBatcher:
    def __init__(
        self,
        queue: SinkQueue,
        stop_seconds: float,
        flush_seconds: float = FLUSH_SECONDS,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        self._queue = queue
        self._waiting: deque[tuple[str, str, Mapping[str, Any]]] = deque()
        self._flush = flush_seconds
        self._max = max_waiting
        self._stop_seconds = stop_seconds
        self._wake = threading.Event()
        self._stopping = False
        self._failing: str | None = None
        self._full = False
        self._thread = threading.Thread(target=self._run, name="sealgate-sink-events", daemon=True)
        self._lock = threading.Lock()  # one writer at a time (the thread, or stop's last flush)

    def put(self, type_: str, event_id: str, data: Mapping[str, Any]) -> None:
        """Queue an event for every sink (called on the event loop: no I/O)."""
        waiting = self._waiting
        if len(waiting) >= self._max:
            # The new one, not the oldest: only the writer takes from the left end.
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

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write what is waiting (blocking: call it from a thread), then end the thread."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(self._stop_seconds)
        deadline = time.monotonic() + self._stop_seconds
        while self._waiting and time.monotonic() < deadline:
            if not self._write():
                time.sleep(RETRY_SECONDS)
        if self._waiting:
            log.error(
                "sink events not queued at shutdown: the database did not take them",
                extra={"sg_events": len(self._waiting)},
            )

    def _run(self) -> None:
        wait = RETRY_SECONDS
        while not self._stopping:
            self._wake.wait(self._flush)
            self._wake.clear()
            while self._waiting and not self._stopping:
                if self._write():
                    wait = RETRY_SECONDS
                    continue
                self._wake.wait(wait)  # the database failed: try again later
                wait = min(wait * 2, RETRY_MAX_SECONDS)

    def _write(self) -> bool:
        """One batch into the queue; False when the database refused it (it stays waiting)."""
        with self._lock:
            waiting = self._waiting
            batch = [waiting[i] for i in range(min(BATCH, len(waiting)))]
            if not batch:
                return True
            try:
                self._queue.enqueue_many(batch)
            except Exception as exc:  # noqa: BLE001 - kept and retried; the reason is logged
                reason = type(exc).__name__
                if self._failing is None:
                    log.warning(
                        "sink events not yet queued: the database failed; retrying",
                        extra={"sg_error": reason, "sg_events": len(waiting)},
                    )
                self._failing = reason
                return False
            for _ in batch:
                waiting.popleft()
            if self._failing is not None:
                log.warning("sink events queued again")
                self._failing = None
            return True
