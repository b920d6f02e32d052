"""The data directory, engine creation and schema migration.

SQLite gets WAL and a busy timeout so the gateway and an admin tool can share the file. Migrations
are Alembic's, run at start-up (``upgrade head``) from the scripts shipped in the package. One
gateway process holds a data directory at a time (``claim_data_dir``): two would share the
SQLite file and the spend outbox file with no lock between their writers.

Every database call has a time limit, ``timeout`` seconds (``storage.timeout_seconds``): the
server's own (PostgreSQL ``statement_timeout``, ``lock_timeout``, ``connect_timeout``; SQLite's
busy timeout), the pool's wait for a free connection, TCP keepalives that notice a peer gone from
the network, and the client's watchdog for a server that never answers (``deadlines.py``).
"""

from __future__ import annotations

import fcntl
import math
import os
from pathlib import Path
from typing import IO, Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

from gateway.config import DEFAULT_STORAGE_TIMEOUT_SECONDS
from gateway.store import deadlines

MIGRATIONS = Path(__file__).parent / "migrations"
# Migrations may rewrite a large table: they get this long instead (start-up, before serving).
MIGRATION_SECONDS = 600.0
# The PostgreSQL advisory lock that makes replicas migrate one at a time (any fixed number: the
# server scopes advisory locks to the database): b"sealgate" read as a 64-bit integer.
MIGRATION_LOCK = int.from_bytes(b"sealgate", "big")


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'sealgate.db'}"


def make_engine(url: str, timeout: float = DEFAULT_STORAGE_TIMEOUT_SECONDS) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": timeout}, pool_timeout=timeout
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        deadlines.watch(engine, timeout)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(
        url,
        pool_size=5,
        max_overflow=10,
        pool_timeout=timeout,
        connect_args=postgres_limits(timeout),
    )
    deadlines.watch(engine, timeout)  # pings each connection at checkout, under the limit
    return engine


def postgres_limits(timeout: float) -> dict[str, Any]:
    """libpq connection parameters that bound every call on the server's side and the network's.
    The server cancels a statement or a lock wait past the limit and ends a transaction left idle;
    the keepalives (and the user timeout, for data sent and never acknowledged) drop a connection
    whose peer is gone from the network."""
    ms = max(1, int(timeout * 1000))
    options = (
        f"-c statement_timeout={ms} -c lock_timeout={ms} "
        f"-c idle_in_transaction_session_timeout={ms * 2}"
    )
    return {
        "connect_timeout": max(2, math.ceil(timeout)),  # libpq's least useful value is 2
        "options": options,
        "keepalives": 1,
        "keepalives_idle": max(1, math.ceil(timeout)),
        "keepalives_interval": max(1, math.ceil(timeout / 3)),
        "keepalives_count": 3,
        "tcp_user_timeout": ms * 2,
    }


def migrate(engine: Engine) -> None:
    """Bring the schema to head, in one transaction. On PostgreSQL, replicas starting together
    (a Deployment's first install) take turns: each holds a transaction-scoped advisory lock
    while Alembic reads and writes the schema, so the first creates it and the others wait, then
    find it at head. Without the lock they would all try to create alembic_version and the
    tables, and every one but the first would fail on a unique violation."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with deadlines.allowing(engine, MIGRATION_SECONDS), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            ms = int(MIGRATION_SECONDS * 1000)
            connection.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")
            # Released at commit or rollback, and by the server if this process dies.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


LOCK_FILE = "gateway.lock"


def ensure_data_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


class DataDirInUse(Exception):
    """Another process holds this data directory."""


def claim_data_dir(path: Path) -> IO[str]:
    """Hold an exclusive lock on the data directory for as long as the returned file stays
    open (the process's life: the kernel drops the lock when it ends, kill -9 included). The
    file names the holder's pid; a second gateway on the same directory is refused."""
    handle = (path / LOCK_FILE).open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise DataDirInUse(
            f"is in use by another Sealgate process (pid {holder}); give each gateway its own "
            "--data-dir (replicas share state through storage.url and Redis)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
