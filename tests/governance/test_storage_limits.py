"""Every database call has a time limit (storage.timeout_seconds): a lock wait ends with the
server's error, and a server that never answers is cut off by the client's watchdog. Real
servers: a lock held on the shared PostgreSQL, and the tests' own cluster, frozen."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gateway.store.db import make_engine, migrate
from tests.governance.postgres_cluster import PostgresCluster

pytestmark = pytest.mark.postgres


def timed(call: Callable[[], object], bound: float) -> tuple[float, BaseException | None]:
    """How long ``call`` took and what it raised; a call still running after ``bound`` seconds
    is left behind in its thread (the assertion on the time then fails)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    started = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(bound)
    return time.monotonic() - started, outcome[0] if outcome else None


def test_a_lock_wait_ends_with_an_error_within_the_limit(
    postgres_database: Callable[[], str],
) -> None:
    url = postgres_database()
    engine = make_engine(url, timeout=1.0)
    migrate(engine)
    locker = psycopg.connect(url, autocommit=False)
    try:
        locker.execute("LOCK TABLE spend IN EXCLUSIVE MODE")

        def insert() -> None:
            with engine.begin() as connection:
                connection.execute(text("DELETE FROM spend"))

        took, error = timed(insert, 10)
        assert took < 3.0  # lock_timeout is 1 s
        assert isinstance(error, DBAPIError)
        # The server's own answer, statement or lock timeout, whichever it counts first.
        assert isinstance(
            error.orig, psycopg.errors.LockNotAvailable | psycopg.errors.QueryCanceled
        )
    finally:
        locker.rollback()
        locker.close()
        engine.dispose()


def test_a_database_that_never_answers_is_cut_off_within_the_limit(
    postgres_cluster: PostgresCluster,
) -> None:
    url = postgres_cluster.create_database("silent_" + secrets.token_hex(4))
    engine = make_engine(url, timeout=1.0)

    def select() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    select()  # a pooled connection, idle: the next checkout pings it
    time.sleep(1.1)
    postgres_cluster.freeze()
    try:
        took, error = timed(select, 15)
        # The ping is cut after twice the limit, then a new connection gives up after its
        # connect_timeout (2 s, libpq's least): never the database's own pace.
        assert took < 6.0
        assert error is not None
        postgres_cluster.thaw()
        select()  # the pool recovers once the server answers
    finally:
        postgres_cluster.thaw()
        engine.dispose()
