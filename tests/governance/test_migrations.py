"""Schema migration when several replicas start at once on a fresh PostgreSQL database, as a
Deployment's pods do on the first install: every one of them comes up, the schema is made once,
and it is at head. Each migrator is a process of its own (as each replica is), held at a gate
until all have imported and connected, then released together."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest
from sqlalchemy import create_engine, inspect, text

from gateway.store.db import make_engine, migrate

pytestmark = pytest.mark.postgres

MIGRATORS = 4
ROUNDS = 3

# One replica's start-up migration: connect first (so the race is on the migration, not on
# connecting), say so, wait at the gate, migrate.
MIGRATOR = """
import sys
from gateway.store.db import make_engine, migrate
engine = make_engine(sys.argv[1])
engine.connect().close()
print("ready", flush=True)
sys.stdin.readline()
migrate(engine)
print("migrated", flush=True)
"""


def start_together(url: str, count: int) -> list[subprocess.CompletedProcess[str]]:
    """``count`` migrators on ``url``, released at the same moment; their outcomes."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATOR, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline() == "ready\n", process.stderr
        for process in processes:  # the gate opens for all of them
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outcomes = []
        for process in processes:
            stdout, stderr = process.communicate(timeout=120)
            outcomes.append(
                subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
            )
        return outcomes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from gateway.store.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    (head,) = ScriptDirectory.from_config(config).get_heads()
    return str(head)


def test_replicas_migrating_a_fresh_database_at_once_all_start_and_the_schema_is_made_once(
    postgres_database: Callable[[], str],
) -> None:
    """Without the lock, the migrators that lose the race exit on a UniqueViolation (both try to
    create alembic_version and the tables); with it, they wait, then find the schema at head."""
    for _ in range(ROUNDS):
        url = postgres_database()
        outcomes = start_together(url, MIGRATORS)
        failed = [o.stderr[-2000:] for o in outcomes if o.returncode != 0]
        assert failed == []
        assert [o.stdout for o in outcomes] == ["migrated\n"] * MIGRATORS
        engine = create_engine("postgresql+psycopg://" + url.removeprefix("postgresql://"))
        try:
            with engine.connect() as connection:
                versions = connection.execute(text("SELECT version_num FROM alembic_version"))
                assert [row[0] for row in versions] == [head_revision()]
            assert {"virtual_keys", "spend"} <= set(inspect(engine).get_table_names())
        finally:
            engine.dispose()


def test_the_migration_lock_is_released_once_the_schema_is_at_head(
    postgres_database: Callable[[], str],
) -> None:
    """The lock is the migration transaction's, not the session's: once migrate returns, the
    pooled connection it used holds no advisory lock, so a replica started later (or one that
    migrates again) is not kept waiting."""
    url = postgres_database()
    engine = make_engine(url)
    try:
        migrate(engine)
        migrate(engine)  # already at head: a no-op, on the same pooled connection
        with engine.connect() as connection:
            held = connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks JOIN pg_database ON pg_database.oid = database"
                    " WHERE locktype = 'advisory' AND datname = current_database()"
                )
            ).scalar_one()
        assert held == 0
        assert [o.returncode for o in start_together(url, 1)] == [0]
    finally:
        engine.dispose()


def test_the_migrations_form_one_chain_with_one_head_and_unique_revision_ids() -> None:
    """Branches that each add a migration on the same parent make two heads, and `migrate`
    (upgrade to "head") then refuses to start: the chain must stay linear."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from gateway.store.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    assert len(script.get_heads()) == 1, script.get_heads()
    chain = [r.revision for r in script.walk_revisions()]
    assert len(chain) == len(set(chain)) == len(list(MIGRATIONS.glob("versions/0*.py")))
