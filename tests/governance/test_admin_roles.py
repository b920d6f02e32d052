"""Roles in the admin API, against a real gateway process: every escalation is refused (an
object out of the caller's sight as an unknown id: see test_admin_scope.py), every change is
audited with who and what (never a key or token), and the audit chain holds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.governance import gateways
from tests.governance.gateways import As
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    with gateways.running(tmp_path_factory.mktemp("roles"), gateways.config(upstream_server)) as gw:
        yield gw


@pytest.fixture(scope="module")
def world(gateway: GatewayProcess) -> dict[str, Any]:
    admin = As(gateway, gateway.admin_key)
    team_a = admin("POST", "/admin/teams", json={"name": "team-a"}).json()
    team_b = admin("POST", "/admin/teams", json={"name": "team-b"}).json()
    user_b = admin("POST", "/admin/users", json={"name": "bob", "team_id": team_b["id"]}).json()
    key_a = gateway.create_key([gateways.MODEL], team_id=team_a["id"])
    key_b = gateway.create_key([gateways.MODEL], team_id=team_b["id"])

    def token(role: str, team_id: str | None) -> dict[str, Any]:
        response = admin(
            "POST", "/admin/tokens", json={"role": role, "team_id": team_id, "name": role}
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    return {
        "admin": admin,
        "team_a": team_a,
        "team_b": team_b,
        "user_b": user_b,
        "key_a": key_a,
        "key_b": key_b,
        "team_admin": token("team_admin", team_a["id"]),
        "viewer": token("viewer", team_a["id"]),
    }


@pytest.fixture
def team_admin(gateway: GatewayProcess, world: dict[str, Any]) -> As:
    return As(gateway, world["team_admin"]["token"])


@pytest.fixture
def viewer(gateway: GatewayProcess, world: dict[str, Any]) -> As:
    return As(gateway, world["viewer"]["token"])


def test_a_team_admin_manages_keys_and_member_budgets_of_their_own_team(
    team_admin: As, world: dict[str, Any]
) -> None:
    created = team_admin("POST", "/admin/keys", json={"models": [gateways.MODEL]})
    assert created.status_code == 201, created.text
    assert created.json()["team_id"] == world["team_a"]["id"]  # defaults to their team
    budget = team_admin(
        "POST",
        "/admin/budgets",
        json={"scope": "key", "scope_id": created.json()["id"], "period": "daily", "max_usd": "5"},
    )
    assert budget.status_code == 201, budget.text
    listed = team_admin("GET", "/admin/keys").json()["data"]
    assert {k["team_id"] for k in listed} == {world["team_a"]["id"]}
    assert team_admin("DELETE", f"/admin/keys/{created.json()['id']}").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        (
            "POST",
            "/admin/keys",
            lambda w: {"models": ["fake-gpt"], "team_id": w["team_b"]["id"]},
            404,
        ),
        ("DELETE", "/admin/keys/{key_b}", None, 404),
        ("PATCH", "/admin/keys/{key_b}", lambda w: {"rpm_limit": 1}, 404),
        ("GET", "/admin/keys/{key_b}", None, 404),
        (
            "POST",
            "/admin/keys",
            lambda w: {"models": ["fake-gpt"], "user_id": w["user_b"]["id"]},
            404,
        ),
        ("POST", "/admin/users", lambda w: {"name": "eve", "team_id": w["team_b"]["id"]}, 404),
        ("POST", "/admin/teams", lambda w: {"name": "team-c"}, 403),
        ("PATCH", "/admin/teams/{team_a}", lambda w: {"rpm_limit": 100000}, 403),
        ("GET", "/admin/teams/{team_b}", None, 404),
        (
            "POST",
            "/admin/budgets",
            lambda w: {
                "scope": "team",
                "scope_id": w["team_a"]["id"],
                "period": "monthly",
                "max_usd": "1000000",
            },
            403,
        ),
        (
            "POST",
            "/admin/budgets",
            lambda w: {
                "scope": "key",
                "scope_id": w["key_b"]["id"],
                "period": "daily",
                "max_usd": "1",
            },
            404,
        ),
        (
            "POST",
            "/admin/tokens",
            lambda w: {"role": "team_admin", "team_id": w["team_b"]["id"], "name": "x"},
            404,
        ),
        ("POST", "/admin/tokens", lambda w: {"role": "viewer", "name": "x"}, 403),
        ("GET", "/admin/tokens", None, 403),
        ("DELETE", "/admin/tokens/{viewer}", None, 404),
        ("GET", "/admin/audit", None, 403),
        ("GET", "/admin/reports/spend?team_id={team_b}", None, 404),
    ],
)
def test_a_team_admin_cannot_escalate(
    team_admin: As, world: dict[str, Any], method: str, path: str, body: Any, status: int
) -> None:
    """403 where the team admin may see the object (or the route is not its role's at all),
    404 as for an unknown id where the object is out of its sight."""
    ids = {
        "key_b": world["key_b"]["id"],
        "team_a": world["team_a"]["id"],
        "team_b": world["team_b"]["id"],
        "viewer": world["viewer"]["id"],
    }
    response = team_admin(method, path.format(**ids), json=body(world) if body else None)
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/admin/keys", {"models": ["fake-gpt"]}),
        ("POST", "/admin/users", {"name": "val"}),
        ("PATCH", "/admin/teams/{team_a}", {"rpm_limit": 1}),
        ("DELETE", "/admin/keys/{key_a}", None),
        ("PATCH", "/admin/keys/{key_a}", {"rpm_limit": 1}),
        ("GET", "/admin/tokens", None),
        ("GET", "/admin/audit", None),
    ],
)
def test_a_viewer_reads_their_team_and_changes_nothing(
    viewer: As, world: dict[str, Any], method: str, path: str, body: Any
) -> None:
    ids = {"key_a": world["key_a"]["id"], "team_a": world["team_a"]["id"]}
    response = viewer(method, path.format(**ids), json=body)
    assert response.status_code == 403, response.text


def test_a_viewer_may_read_their_teams_keys_budgets_and_reports(
    viewer: As, world: dict[str, Any]
) -> None:
    for path in ("/admin/keys", "/admin/budgets", "/admin/teams", "/admin/reports/spend"):
        assert viewer("GET", path).status_code == 200, path
    assert [t["id"] for t in viewer("GET", "/admin/teams").json()["data"]] == [
        world["team_a"]["id"]
    ]


def test_admin_tokens_and_virtual_keys_do_not_open_each_others_doors(
    gateway: GatewayProcess, world: dict[str, Any]
) -> None:
    as_api_key = gateways.chat(gateway, world["team_admin"]["token"])
    assert as_api_key.status_code == 401
    as_admin = As(gateway, world["key_b"]["key"])("GET", "/admin/keys")
    assert as_admin.status_code == 401


def test_a_revoked_admin_token_is_refused(gateway: GatewayProcess, world: dict[str, Any]) -> None:
    admin = world["admin"]
    made = admin(
        "POST", "/admin/tokens", json={"role": "viewer", "team_id": None, "name": "temp"}
    ).json()
    assert As(gateway, made["token"])("GET", "/admin/keys").status_code == 200
    assert admin("DELETE", f"/admin/tokens/{made['id']}").status_code == 200
    assert As(gateway, made["token"])("GET", "/admin/keys").status_code == 401


def test_every_admin_action_is_audited_without_any_secret(
    gateway: GatewayProcess, world: dict[str, Any], team_admin: As
) -> None:
    team_admin("POST", "/admin/keys", json={"models": [gateways.MODEL]})
    audit = world["admin"]("GET", "/admin/audit").json()
    assert audit["chain_broken_at"] is None
    actions = {(e["actor"], e["action"]) for e in audit["data"]}
    assert ("admin", "team.create") in actions
    assert ("admin", "token.create") in actions
    assert (f"token:{world['team_admin']['id']}", "key.create") in actions
    text = json.dumps(audit)
    for secret in (world["team_admin"]["token"], world["viewer"]["token"], world["key_b"]["key"]):
        assert secret not in text
    assert gateway.admin_key not in text


def test_the_audit_chain_reveals_a_row_changed_in_the_database(tmp_path: Path) -> None:
    from sqlalchemy import update

    from gateway.governance.audit import Actor, AuditLog
    from gateway.store.db import make_engine, migrate
    from gateway.store.tables import audit_log

    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    migrate(engine)
    log = AuditLog(engine)
    for n in range(3):
        log.record(Actor("admin", "admin"), "team.create", f"team:{n}", {"n": n})
    assert log.verify() is None
    with engine.begin() as connection:
        connection.execute(update(audit_log).where(audit_log.c.seq == 2).values(target="team:x"))
    assert log.verify() == 2
    engine.dispose()


def test_a_batch_of_audit_rows_is_appended_in_order_on_the_chain(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from gateway.governance.audit import Actor, AuditLog
    from gateway.store.db import make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    migrate(engine)
    log = AuditLog(engine)
    log.record(Actor("admin", "admin"), "team.create", "team:0", {"n": 0})
    key = Actor("key:k1", "key")
    log.record_many(
        [(datetime.now(UTC), key, "mcp.call", f"mcp:t.{n}", {"n": n}) for n in (1, 2, 3)]
    )
    log.record_many([])
    entries = log.entries()
    assert [e["target"] for e in reversed(entries)] == ["team:0", "mcp:t.1", "mcp:t.2", "mcp:t.3"]
    assert log.verify() is None
    engine.dispose()
