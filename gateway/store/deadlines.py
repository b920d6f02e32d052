"""A time limit on every use of a database connection, kept by the client.

The server keeps its own limits (``gateway.store.db`` opens every PostgreSQL connection with
``statement_timeout``, ``lock_timeout`` and ``connect_timeout``; SQLite waits that long for a lock
at most), and those answer a slow or locked database with a clean error. A server that accepts
connections and then never answers (a stopped process, a stalled proxy or network) sends nothing
at all, and a driver waiting on its socket would wait forever. So the engine also has a watchdog:
a connection is armed when it is checked out of the pool and disarmed when it is checked in, and
one that is still out after ``WATCHDOG_FACTOR`` times the limit is cut (PostgreSQL: its socket is
shut down; SQLite: the running statement is interrupted). The server gets the first chance to
answer with its own, cleaner error; the blocked call then fails with the driver's error, the
pool drops the connection, and no thread waits on the database for much longer than the limit.

The pool's own liveness ping runs inside the armed time too (``pool_pre_ping`` is replaced by a
ping in the checkout hook), so a frozen server cannot hold a thread in the ping either. A
connection that was in use less than ``PING_AFTER_IDLE_SECONDS`` ago is not pinged: on the
spend outbox's path (a transaction per batch, batches back to back) the ping was a round trip
per batch; a server that went away within that second fails one call, and the pool drops it.

``Watchdog.allowing`` lends a longer limit to the calls of one thread (migrations at start-up).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event, exc

log = logging.getLogger("sealgate.store")

# The watchdog cuts a connection checked out for this many times the limit: past the server's
# own statement and lock timeouts, so it only acts when the server does not answer at all.
WATCHDOG_FACTOR = 2.0
PING_AFTER_IDLE_SECONDS = 1.0


@dataclass(order=True)
class _Armed:
    deadline: float
    order: int
    connection: Any = field(compare=False)
    active: bool = field(default=True, compare=False)


class Watchdog:
    """Cuts database connections that are checked out for longer than ``limit`` seconds."""

    def __init__(self, limit: float, postgres: bool) -> None:
        self.limit = limit
        self._postgres = postgres
        self._heap: list[_Armed] = []
        self._order = itertools.count()
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._lent = threading.local()
        self.cuts = 0

    @contextlib.contextmanager
    def allowing(self, seconds: float) -> Iterator[None]:
        """Connections checked out by this thread in the block get ``seconds`` instead."""
        before = getattr(self._lent, "limit", None)
        self._lent.limit = seconds
        try:
            yield
        finally:
            self._lent.limit = before

    def current_limit(self) -> float:
        lent: float | None = getattr(self._lent, "limit", None)
        return lent if lent is not None else self.limit

    def arm(self, connection: Any) -> _Armed:
        armed = _Armed(time.monotonic() + self.current_limit(), next(self._order), connection)
        with self._lock:
            heapq.heappush(self._heap, armed)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="db-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0] is armed:
                self._lock.notify()
        return armed

    def disarm(self, armed: _Armed | None) -> None:
        if armed is not None:
            with self._lock:
                armed.active = False  # dropped from the heap when it comes up

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._heap and not self._heap[0].active:
                    heapq.heappop(self._heap)
                wait = self._heap[0].deadline - time.monotonic() if self._heap else None
                if wait is None or wait > 0:
                    self._lock.wait(wait)
                    continue
                armed = heapq.heappop(self._heap)
                armed.active = False
                # Cut under the lock: a connection disarmed meanwhile (checked in, then maybe
                # closed and its file descriptor reused) is never touched.
                self._cut(armed.connection)

    def _cut(self, connection: Any) -> None:
        self.cuts += 1
        log.warning("database call cut off: no answer within its time limit")
        try:
            if self._postgres:
                fd = connection.pgconn.socket
                with socket.socket(fileno=os.dup(fd)) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            else:
                connection.interrupt()
        except Exception as error:  # noqa: BLE001 - already closed: nothing left to cut
            log.debug("cutting a database connection failed", extra={"sg_error": repr(error)})


_WATCHDOGS: weakref.WeakKeyDictionary[Engine, Watchdog] = weakref.WeakKeyDictionary()


def watch(engine: Engine, limit: float) -> Watchdog:
    """Give ``engine`` a watchdog for the limit of ``limit`` seconds per call (checkouts are cut
    at ``WATCHDOG_FACTOR`` times that); PostgreSQL connections are pinged at checkout under it,
    instead of ``pool_pre_ping``."""
    postgres = engine.dialect.name == "postgresql"
    dog = Watchdog(limit * WATCHDOG_FACTOR, postgres)
    _WATCHDOGS[engine] = dog

    @event.listens_for(engine, "connect")
    def _connected(_dbapi_connection: Any, record: Any) -> None:
        record.info["sg_used"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        record.info["sg_armed"] = dog.arm(dbapi_connection)
        idle = time.monotonic() - record.info.get("sg_used", 0.0)
        if postgres and idle >= PING_AFTER_IDLE_SECONDS:
            try:
                engine.dialect.do_ping(dbapi_connection)
            except Exception as error:
                dog.disarm(record.info.pop("sg_armed", None))
                # The pool drops this connection and tries a new one.
                raise exc.DisconnectionError(type(error).__name__) from error

    def _done(_dbapi_connection: Any, record: Any, *_: Any) -> None:
        if record is not None:
            dog.disarm(record.info.pop("sg_armed", None))
            record.info["sg_used"] = time.monotonic()

    for name in ("checkin", "invalidate", "soft_invalidate", "close", "detach"):
        event.listen(engine, name, _done)
    return dog


def watchdog(engine: Engine) -> Watchdog | None:
    return _WATCHDOGS.get(engine)


@contextlib.contextmanager
def allowing(engine: Engine, seconds: float) -> Iterator[None]:
    """A longer limit for this thread's calls on ``engine`` (migrations)."""
    dog = watchdog(engine)
    if dog is None:
        yield
        return
    with dog.allowing(seconds):
        yield
