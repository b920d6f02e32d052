"""Dashboard sessions: idle and absolute expiry, logout and token revocation end them, only a
hash of the cookie's secret is stored, a sign-in state works once; and sessions are shared by
replicas (two gateway processes on one PostgreSQL): signed in on one, used on the other, signed
out on the other, ended on both."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from gateway.governance.audit import Actor
from gateway.governance.sessions import LOGIN_SECONDS, Sessions, digest
from gateway.store.db import make_engine, migrate
from gateway.store.tables import ui_logins, ui_sessions
from tests.governance import gateways
from tests.governance.conftest import postgres_database  # noqa: F401 - the fixture
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess
from tests.ui.conftest import UI, running

WHO = Actor("token:0123456789abcdef", "viewer", "team1")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = make_engine(f"sqlite:///{tmp_path / 'ui.db'}")
    migrate(made)
    yield made
    made.dispose()


def test_a_session_ends_after_its_idle_time_without_a_request(engine: Engine) -> None:
    sessions = Sessions(engine, idle_seconds=600, max_seconds=3600)
    secret, started = sessions.start(WHO)
    assert sessions.lookup(secret, started.created_at + timedelta(seconds=599)) is not None
    assert sessions.lookup(secret, started.created_at + timedelta(seconds=599 + 600)) is None
    assert sessions.lookup(secret) is None  # and it is gone for good


def test_a_used_session_still_ends_at_its_absolute_expiry(engine: Engine) -> None:
    sessions = Sessions(engine, idle_seconds=600, max_seconds=1800)
    secret, started = sessions.start(WHO)
    at = started.created_at
    for minutes in (5, 10, 15, 20, 25):  # a request every five minutes: never idle
        assert sessions.lookup(secret, at + timedelta(minutes=minutes)) is not None
    assert sessions.lookup(secret, at + timedelta(minutes=30)) is None


def test_the_database_holds_only_the_hash_of_the_cookies_secret(engine: Engine) -> None:
    secret, _ = Sessions(engine).start(WHO)
    with engine.connect() as connection:
        rows = [tuple(r) for r in connection.execute(select(ui_sessions))]
    assert len(rows) == 1
    assert secret not in repr(rows) and digest(secret) in repr(rows)
    assert rows[0][1:4] == (WHO.name, WHO.role, WHO.team_id)


def test_ending_a_session_refuses_its_cookie_from_then_on(engine: Engine) -> None:
    sessions = Sessions(engine)
    secret, _ = sessions.start(WHO)
    assert sessions.end(secret) is True
    assert sessions.lookup(secret) is None
    assert sessions.end(secret) is False
    assert sessions.lookup("not-a-session") is None and sessions.lookup(None) is None


def test_a_sign_in_state_works_once_and_not_after_it_expires(engine: Engine) -> None:
    sessions = Sessions(engine)
    sessions.begin_login("state-1", "verifier-1", "nonce-1")
    found = sessions.finish_login("state-1")
    assert found is not None and (found.verifier, found.nonce) == ("verifier-1", "nonce-1")
    assert sessions.finish_login("state-1") is None
    sessions.begin_login("state-2", "v", "n")
    with engine.begin() as connection:
        connection.execute(
            ui_logins.update().values(
                created_at=datetime.now(UTC) - timedelta(seconds=LOGIN_SECONDS + 1)
            )
        )
    assert sessions.finish_login("state-2") is None


def test_sweeping_deletes_ended_and_expired_sessions_only(engine: Engine) -> None:
    sessions = Sessions(engine, idle_seconds=600, max_seconds=3600)
    live, _ = sessions.start(WHO)
    ended, _ = sessions.start(WHO)
    sessions.end(ended)
    assert sessions.sweep() == 1
    assert sessions.lookup(live) is not None
    assert sessions.sweep(datetime.now(UTC) + timedelta(hours=2)) == 1


def sign_in(url: str, credential: str) -> str:
    """The session cookie's secret of a sign-in at ``url``."""
    with httpx.Client(base_url=url, timeout=10) as client:
        page = client.get("/ui/login")
        token = re.search(r'name="login_token" value="([^"]+)"', page.text)
        assert token is not None
        answer = client.post("/ui/login", data={"login_token": token[1], "credential": credential})
        assert answer.status_code == 303, answer.text
        return str(answer.cookies["sg_session"])


def page(url: str, secret: str, path: str = "/ui/keys") -> httpx.Response:
    return httpx.get(url + path, cookies={"sg_session": secret}, timeout=10)


def test_revoking_an_admin_token_ends_the_sessions_it_signed_in(
    gateway: GatewayProcess, world: dict[str, Any]
) -> None:
    made = world["admin"](
        "POST", "/admin/tokens", json={"role": "viewer", "team_id": None, "name": "short-lived"}
    ).json()
    secret = sign_in(gateway.url, made["token"])
    assert page(gateway.url, secret).status_code == 200
    assert world["admin"]("DELETE", f"/admin/tokens/{made['id']}").status_code == 200
    ended = page(gateway.url, secret)
    assert ended.status_code == 303 and ended.headers["location"] == "/ui/login"


@pytest.mark.postgres
def test_replicas_share_sessions_and_a_sign_out_on_one_ends_it_on_both(
    upstream_server: FakeUpstream,
    tmp_path: Path,
    postgres_database: Callable[[], str],  # noqa: F811
) -> None:
    config = gateways.config(upstream_server, storage_url=postgres_database(), extra=UI)
    with running(tmp_path / "a", config) as first, running(tmp_path / "b", config) as second:
        secret = sign_in(first.url, first.admin_key)
        assert page(second.url, secret).status_code == 200  # signed in on one, used on the other
        keys = page(second.url, secret).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', keys)
        assert csrf is not None
        out = httpx.post(
            second.url + "/ui/logout", data={"csrf": csrf[1]}, cookies={"sg_session": secret}
        )
        assert out.status_code == 303
        for replica in (first, second):
            ended = page(replica.url, secret)
            assert ended.status_code == 303 and ended.headers["location"] == "/ui/login"
