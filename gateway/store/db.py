"""The data directory, engine creation and schema migration.

SQLite gets WAL and a busy timeout so the gateway and an admin tool can share the file. Migrations
are Alembic's, run at start-up (``upgrade head``) from the scripts shipped in the package. One
gateway process holds a data directory at a time (``claim_data_dir``): two would share the
SQLite file and the spend outbox file with no lock between their writers.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO, Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

MIGRATIONS = Path(__file__).parent / "migrations"


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'sealgate.db'}"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def migrate(engine: Engine) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
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
