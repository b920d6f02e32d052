"""The access events' way into the sink queue (``sink_events.EventBatcher``), on a real SQLite
(the database locked by another writer) and a real PostgreSQL (cut or frozen behind a proxy):
while the database fails the events wait in the fsync'd outbox file, not in memory; once it
answers, and at start before serving after a restart, the file is queued, each event once for
every sink, and removed; a torn last line is cut; a file queued again inserts nothing twice; only
a file that cannot be written leaves events in memory, up to the limit."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from gateway.governance import sink_events
from gateway.governance.sink_events import DELIVERING_FILE, OUTBOX_FILE, EventBatcher, line
from gateway.governance.sink_queue import SinkQueue
from gateway.store.db import make_engine, migrate
from tests.governance.conftest import via_proxy
from tests.governance.tcp_proxy import TcpProxy
from tests.governance.test_sink_queue import drain

SINKS = ["hook", "bucket"]
TIMEOUT = 0.5  # storage.timeout_seconds of the batcher's engine


@dataclass
class Database:
    """The batcher's engine, a direct one for the test's reads, and a way to make the first
    fail and answer again."""

    engine: Engine
    direct: Engine
    down: Callable[[], None]
    up: Callable[[], None]
    proxy: TcpProxy | None = None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    postgres_database: Callable[[], str],
    postgres_proxy: TcpProxy,
) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "gov.db"
        direct = make_engine(f"sqlite:///{path}")
        migrate(direct)
        engine = make_engine(f"sqlite:///{path}", TIMEOUT)
        held: list[sqlite3.Connection] = []

        def down() -> None:  # another writer holds the write lock: every write times out
            connection = sqlite3.connect(path, isolation_level=None)
            connection.execute("BEGIN EXCLUSIVE")
            held.append(connection)

        def up() -> None:
            while held:
                connection = held.pop()
                connection.execute("ROLLBACK")
                connection.close()

        yield Database(engine, direct, down, up)
        up()
    else:
        direct = make_engine(postgres_database())
        migrate(direct)
        url = via_proxy(str(direct.url.render_as_string(False)), postgres_proxy)
        engine = make_engine(url, TIMEOUT)
        yield Database(engine, direct, postgres_proxy.cut, postgres_proxy.restore, postgres_proxy)
        postgres_proxy.restore()
    engine.dispose()
    direct.dispose()


def event(n: int) -> tuple[str, str, dict[str, Any]]:
    """What an access event holds (api/access.py ``fields``): ids, names, numbers."""
    data = {"request_id": f"r{n}", "status": 200, "key_id": "key-1", "model": "m", "cost_usd": 0.5}
    return "access", f"access-{n:06d}", data


def batcher(database: Database, directory: Path, **settings: Any) -> EventBatcher:
    return EventBatcher(SinkQueue(database.engine), directory, 2.0, retry_seconds=0.05, **settings)


def filed(directory: Path) -> list[dict[str, Any]]:
    """The events in the outbox files (the file, and the one being delivered)."""
    lines = []
    for name in (DELIVERING_FILE, OUTBOX_FILE):
        path = directory / name
        if path.exists():
            lines.extend(json.loads(text) for text in path.read_bytes().splitlines())
    return lines


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert check()


def backlog(database: Database) -> dict[str, int]:
    return SinkQueue(database.direct).backlog()


def delivered(directory: Path) -> bool:
    """The file is gone once queued: nothing sealed, nothing appended since."""
    main = directory / OUTBOX_FILE
    return not (directory / DELIVERING_FILE).exists() and main.stat().st_size == 0


def test_events_wait_in_the_file_while_the_database_is_down_and_each_is_queued_once_after(
    database: Database, tmp_path: Path
) -> None:
    SinkQueue(database.direct).register(SINKS)
    events = batcher(database, tmp_path)
    events.start()
    try:
        for n in range(10):
            events.put(*event(n))
        wait_for(lambda: backlog(database) == {"hook": 10, "bucket": 10})
        database.down()
        for n in range(10, 60):
            events.put(*event(n))
        wait_for(lambda: len(filed(tmp_path)) == 50)
        assert events.waiting() == 0  # in the file, not in memory
        lines = filed(tmp_path)
        assert sorted(entry["id"] for entry in lines) == [event(n)[1] for n in range(10, 60)]
        assert all(set(entry) == {"type", "id", "data"} for entry in lines)
        assert all(entry["data"] == event(int(entry["id"][7:]))[2] for entry in lines)
        assert backlog(database) == {"hook": 10, "bucket": 10}
        database.up()
        wait_for(lambda: delivered(tmp_path))
        assert backlog(database) == {"hook": 60, "bucket": 60}
    finally:
        events.stop()
    queue = SinkQueue(database.direct)
    for sink in SINKS:
        assert sorted(drain(queue, sink)) == [event(n)[1] for n in range(60)]  # each once
    assert delivered(tmp_path)


def test_a_restart_while_the_database_is_down_queues_the_file_at_start_before_serving(
    database: Database, tmp_path: Path
) -> None:
    SinkQueue(database.direct).register(SINKS)
    events = batcher(database, tmp_path)
    events.start()
    database.down()
    for n in range(40):
        events.put(*event(n))
    events.stop()  # a restart while the database is still down: what waits goes to the file
    assert len(filed(tmp_path)) == 40
    assert backlog(database) == {"hook": 0, "bucket": 0}
    database.up()
    restarted = batcher(database, tmp_path)
    restarted.start()  # returns once the file is queued: before the gateway serves
    try:
        assert backlog(database) == {"hook": 40, "bucket": 40}
        assert delivered(tmp_path)
    finally:
        restarted.stop()
    queue = SinkQueue(database.direct)
    assert sorted(drain(queue, "hook")) == [event(n)[1] for n in range(40)]


def test_a_half_written_last_line_is_cut_and_the_rest_queued(
    database: Database, tmp_path: Path
) -> None:
    SinkQueue(database.direct).register(SINKS)
    good = b"".join(line(event(n)) for n in range(3))
    (tmp_path / OUTBOX_FILE).write_bytes(good + line(event(3))[:25])
    events = batcher(database, tmp_path)
    events.start()
    try:
        assert backlog(database) == {"hook": 3, "bucket": 3}
        events.put(*event(4))  # starts on a line of its own
        wait_for(lambda: backlog(database) == {"hook": 4, "bucket": 4})
    finally:
        events.stop()
    assert delivered(tmp_path)
    queue = SinkQueue(database.direct)
    assert sorted(drain(queue, "hook")) == [event(n)[1] for n in (0, 1, 2, 4)]


def test_a_file_queued_again_after_an_unclear_failure_queues_nothing_twice(
    database: Database, tmp_path: Path
) -> None:
    queue = SinkQueue(database.direct)
    queue.register(SINKS)
    queue.enqueue_many([event(n) for n in range(5)])  # committed, but the answer was lost
    lines = b"".join(line(event(n)) for n in range(7))  # so the file holds them too
    for _ in range(2):  # and once more, as if the file had not been removed after it
        (tmp_path / OUTBOX_FILE).write_bytes(lines)
        events = batcher(database, tmp_path)
        events.start()
        events.stop()
        assert delivered(tmp_path)
        assert queue.backlog() == {"hook": 7, "bucket": 7}
    for sink in SINKS:
        assert sorted(drain(queue, sink)) == [event(n)[1] for n in range(7)]


@pytest.mark.postgres
def test_what_waits_behind_a_stalled_database_call_goes_to_the_file(
    postgres_database: Callable[[], str], postgres_proxy: TcpProxy, tmp_path: Path
) -> None:
    direct = make_engine(postgres_database())
    migrate(direct)
    stalled = make_engine(via_proxy(str(direct.url.render_as_string(False)), postgres_proxy), 5.0)
    database = Database(stalled, direct, postgres_proxy.freeze, postgres_proxy.thaw)
    SinkQueue(direct).register(SINKS)
    events = batcher(database, tmp_path)
    events.start()
    try:
        events.put(*event(0))
        wait_for(lambda: backlog(database) == {"hook": 1, "bucket": 1})
        postgres_proxy.freeze()  # the server's answers stop: the next call hangs, not fails
        events.put(*event(1))
        time.sleep(sink_events.FLUSH_SECONDS * 4)  # the writer is inside its call now
        for n in range(2, 22):
            events.put(*event(n))
        wait_for(lambda: len(filed(tmp_path)) == 20, timeout=sink_events.STALL_SECONDS + 2)
        assert events.waiting() == 0
        postgres_proxy.thaw()
        wait_for(lambda: backlog(database) == {"hook": 22, "bucket": 22} and delivered(tmp_path))
    finally:
        postgres_proxy.thaw()
        events.stop()
    assert sorted(drain(SinkQueue(direct), "hook")) == [event(n)[1] for n in range(22)]
    stalled.dispose()
    direct.dispose()


def test_only_a_file_that_cannot_be_written_leaves_events_in_memory_up_to_the_limit(
    database: Database, tmp_path: Path
) -> None:
    SinkQueue(database.direct).register(SINKS)
    (tmp_path / OUTBOX_FILE).symlink_to("/dev/full")  # every write: ENOSPC, a full disk
    dropped = sink_events.DROPPED
    before = dropped[(("type", "access"),)]
    events = batcher(database, tmp_path, max_waiting=50)
    database.down()
    for n in range(80):
        events.put(*event(n))
    assert events.waiting() == 50  # the limit holds: the rest dropped and counted
    assert dropped[(("type", "access"),)] - before == 30
    events.start()
    try:
        time.sleep(TIMEOUT * 3)  # tried in the database, then the file: back in memory
        assert (tmp_path / OUTBOX_FILE).stat().st_size == 0
        database.up()
        wait_for(lambda: backlog(database) == {"hook": 50, "bucket": 50})
    finally:
        events.stop()
    assert sorted(drain(SinkQueue(database.direct), "hook")) == [event(n)[1] for n in range(50)]
