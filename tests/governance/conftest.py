"""Fixtures for governance tests: a fresh database per test on either backend (SQLite file, or
a throw-away database on the shared PostgreSQL server), a unique Redis key prefix, a throw-away
redis-server the test may kill, a proxy in front of PostgreSQL the test may cut, slow down or
freeze, and a PostgreSQL cluster of the tests' own that a test may freeze or stop."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from gateway.store.db import make_engine, migrate
from tests.governance.postgres_cluster import PostgresCluster
from tests.governance.tcp_proxy import TcpProxy
from tests.support.gateway_process import free_port

POSTGRES_URL = os.environ.get(
    "SEALGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("SEALGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _admin_engine() -> Engine:
    url = "postgresql+psycopg://" + POSTGRES_URL.removeprefix("postgresql://")
    return create_engine(url, isolation_level="AUTOCOMMIT")


@contextmanager
def _throw_away_databases() -> Iterator[Callable[[], str]]:
    made: list[str] = []
    admin = _admin_engine()

    def make() -> str:
        name = "sg_gov_" + secrets.token_hex(6)
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return str(make_url(POSTGRES_URL).set(database=name).render_as_string(False))

    yield make
    with admin.connect() as connection:
        for name in made:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def postgres_database() -> Iterator[Callable[[], str]]:
    """Makes throw-away databases on the shared server (``postgresql://`` URLs); drops them."""
    with _throw_away_databases() as make:
        yield make


@pytest.fixture(scope="module")
def module_postgres_database() -> Iterator[Callable[[], str]]:
    """As ``postgres_database``, for a module's fixtures: dropped when the module is done."""
    with _throw_away_databases() as make:
        yield make


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest, postgres_database: Callable[[], str]) -> str | None:
    """Each store a gateway process runs on: its default SQLite (None) and PostgreSQL."""
    return postgres_database() if request.param == "postgres" else None


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def module_storage_url(
    request: pytest.FixtureRequest, module_postgres_database: Callable[[], str]
) -> str | None:
    """As ``storage_url``, for one gateway per module and store."""
    return module_postgres_database() if request.param == "postgres" else None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_database: Callable[[], str]
) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gov.db'}"
    return postgres_database()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = "sgtest-" + secrets.token_hex(6)
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match="{" + prefix + "}:*"):
        client.delete(key)
    client.close()


class RedisServer:
    """A redis-server of our own on a free port, so a test can kill it."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed for the Redis fault tests"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.02)
        client.close()
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def postgres_proxy() -> Iterator[TcpProxy]:
    url = make_url(POSTGRES_URL)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    yield proxy
    proxy.stop()


def via_proxy(database_url: str, proxy: TcpProxy) -> str:
    return str(
        make_url(database_url).set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    )


@pytest.fixture(scope="session")
def own_postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster().init().start()
    yield cluster
    cluster.destroy()


@pytest.fixture
def postgres_cluster(own_postgres: PostgresCluster) -> Iterator[PostgresCluster]:
    """The tests' own PostgreSQL server, running and answering at the start of the test; the
    test may freeze or stop it (it is thawed and started again afterwards)."""
    own_postgres.thaw()
    if not (own_postgres.data / "postmaster.pid").exists():
        own_postgres.start()
    yield own_postgres
    own_postgres.thaw()
    if not (own_postgres.data / "postmaster.pid").exists():
        own_postgres.start()
