"""The durable sink queue: every spend row is queued once per registered sink in its own
transaction, whatever path inserted it (group commit, the COPY of a large batch, the outbox
file's replay); a replay queues nothing twice, not even after delivery; a claim leases a batch
to one replica only; a released batch comes back; other event types ride the same queue."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from gateway.governance.sink_queue import SinkQueue
from gateway.governance.spend import OUTBOX_FILE, Outbox
from gateway.store.db import make_engine, migrate
from gateway.store.tables import sink_queue
from tests.governance.test_outbox import record


def queued(engine: Engine, sink: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).select_from(sink_queue).where(sink_queue.c.sink == sink)
            ).scalar_one()
        )


def write(engine: Engine, directory: Path, numbers: range) -> None:
    outbox = Outbox(engine, directory, 0.01, 0.05)
    outbox.start()
    for n in numbers:
        outbox.put(record(n))
    assert outbox.flush()
    outbox.stop()


def drain(queue: SinkQueue, sink: str) -> list[str]:
    ids: list[str] = []
    while events := queue.claim(sink, 100, 30.0):
        ids.extend(event.id for event in events)
        queue.ack([event.seq for event in events])
    return ids


def test_each_spend_row_is_queued_once_for_every_registered_sink(
    engine: Engine, tmp_path: Path
) -> None:
    queue = SinkQueue(engine)
    queue.register(["hook", "bucket"])
    write(engine, tmp_path, range(40))
    write(engine, tmp_path, range(200, 500))  # large batches: the COPY path on PostgreSQL
    assert queue.backlog() == {"hook": 340, "bucket": 340}
    ids = drain(queue, "hook")
    assert sorted(ids) == sorted(record(n).id for n in [*range(40), *range(200, 500)])
    assert queue.backlog() == {"hook": 0, "bucket": 340}


def test_a_replayed_outbox_file_queues_nothing_twice_even_after_delivery(
    engine: Engine, tmp_path: Path
) -> None:
    queue = SinkQueue(engine)
    queue.register(["hook"])
    write(engine, tmp_path, range(10))
    assert len(drain(queue, "hook")) == 10
    # The same records again from the file (a database that committed them but answered too
    # late), and three new ones behind them with older timestamps.
    lines = b"".join(record(n).line() for n in range(13))
    (tmp_path / OUTBOX_FILE).write_bytes(lines)
    write(engine, tmp_path, range(0))
    assert sorted(drain(queue, "hook")) == [record(n).id for n in range(10, 13)]


def test_the_event_carries_the_spend_record_and_never_a_key(engine: Engine, tmp_path: Path) -> None:
    queue = SinkQueue(engine)
    queue.register(["hook"])
    write(engine, tmp_path, range(1))
    (event,) = queue.claim("hook", 10, 30.0)
    envelope = event.envelope()
    assert envelope["id"] == record(0).id
    assert envelope["type"] == "spend"
    assert envelope["data"]["key_id"] == "k1"
    assert envelope["data"]["cost_nanos"] == 1000
    assert envelope["data"]["tags"] == ["a"]


def test_a_claimed_batch_is_leased_to_one_replica_until_released(
    engine: Engine, tmp_path: Path
) -> None:
    first, second = SinkQueue(engine), SinkQueue(engine)
    first.register(["hook"])
    write(engine, tmp_path, range(30))
    taken = first.claim("hook", 20, 30.0)
    assert len(taken) == 20
    rest = second.claim("hook", 20, 30.0)
    assert {e.id for e in rest}.isdisjoint({e.id for e in taken})
    assert len(rest) == 10
    second.ack([e.seq for e in taken])  # not its lease: nothing is deleted
    assert queued(engine, "hook") == 30
    first.release([e.seq for e in taken])
    again = second.claim("hook", 50, 30.0)
    assert sorted(e.id for e in again) == sorted(e.id for e in taken)


def test_an_expired_lease_is_claimed_by_another_replica(engine: Engine, tmp_path: Path) -> None:
    crashed, survivor = SinkQueue(engine), SinkQueue(engine)
    crashed.register(["hook"])
    write(engine, tmp_path, range(5))
    assert len(crashed.claim("hook", 10, -1.0)) == 5  # a lease already past
    assert len(survivor.claim("hook", 10, 30.0)) == 5


@pytest.mark.postgres
def test_replicas_claiming_at_once_never_take_the_same_event(
    postgres_database: Callable[[], str], tmp_path: Path
) -> None:
    url = postgres_database()
    setup = make_engine(url)
    migrate(setup)
    SinkQueue(setup).register(["hook"])
    write(setup, tmp_path, range(600))
    taken: list[list[str]] = [[] for _ in range(4)]

    def replica(index: int) -> None:
        engine = make_engine(url)
        taken[index] = drain(SinkQueue(engine), "hook")
        engine.dispose()

    threads = [threading.Thread(target=replica, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [event for ids in taken for event in ids]
    assert len(every) == 600
    assert len(set(every)) == 600
    setup.dispose()


def test_other_event_types_ride_the_same_queue_once(engine: Engine) -> None:
    queue = SinkQueue(engine)
    queue.register(["hook", "bucket"])
    alert = {"team_id": "t1", "budget_id": "b1", "threshold": "soft"}
    queue.enqueue("budget_alert", "alert-1", alert)
    queue.enqueue("budget_alert", "alert-1", alert)  # the same alert again
    (event,) = queue.claim("hook", 10, 30.0)
    assert event.envelope() == {"id": "alert-1", "type": "budget_alert", "data": alert}
    assert queue.backlog() == {"hook": 1, "bucket": 1}


def test_a_sink_no_longer_configured_is_removed_with_its_backlog(
    engine: Engine, tmp_path: Path
) -> None:
    queue = SinkQueue(engine)
    queue.register(["hook", "old"])
    write(engine, tmp_path, range(3))
    assert queue.register(["hook"]) == ["old"]
    assert queued(engine, "old") == 0
    write(engine, tmp_path, range(3, 5))
    assert queue.backlog() == {"hook": 5}


def test_a_delivered_event_s_sequence_number_is_never_reused(
    engine: Engine, tmp_path: Path
) -> None:
    queue = SinkQueue(engine)
    queue.register(["bucket"])
    write(engine, tmp_path, range(3))
    first = queue.claim("bucket", 10, 30.0)
    queue.ack([event.seq for event in first])
    write(engine, tmp_path, range(3, 6))
    later = queue.claim("bucket", 10, 30.0)
    assert min(event.seq for event in later) > max(event.seq for event in first)
