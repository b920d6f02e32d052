"""A scoped caller (a team admin, or a viewer bound to a team) cannot tell the ids of objects it
may not see from ids that do not exist. Against a real gateway process, on SQLite and on
PostgreSQL, every admin route that takes an id (in its path, its query or its body) answers
another team's id exactly as it answers a random unknown one: same status, same body but for the
id echoed back, and the same (no) audit rows. Where the caller may see the object but not do
this to it, the answer stays 403."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.governance import gateways
from tests.governance.gateways import As
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
    module_storage_url: str | None,
) -> Iterator[GatewayProcess]:
    url = module_storage_url
    workdir: Path = tmp_path_factory.mktemp("scope")
    with gateways.running(workdir, gateways.config(upstream_server, storage_url=url)) as process:
        yield process


@pytest.fixture(scope="module")
def world(gateway: GatewayProcess) -> dict[str, Any]:
    """Teams A and B, each with a key, a budget on that key and a budget on the team; a user in
    team B; a key and a user in no team; admin tokens for team A, team B and all teams."""
    admin = As(gateway, gateway.admin_key)

    def made(path: str, **body: Any) -> dict[str, Any]:
        response = admin("POST", path, json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def budget(scope: str, scope_id: str, period: str) -> dict[str, Any]:
        return made("/admin/budgets", scope=scope, scope_id=scope_id, period=period, max_usd="9")

    world: dict[str, Any] = {}
    for team in ("a", "b"):
        world[f"team_{team}"] = made("/admin/teams", name=f"team-{team}")
        team_id = world[f"team_{team}"]["id"]
        world[f"key_{team}"] = made("/admin/keys", models=[gateways.MODEL], team_id=team_id)
        world[f"member_budget_{team}"] = budget("key", world[f"key_{team}"]["id"], "daily")
        world[f"team_budget_{team}"] = budget("team", team_id, "monthly")
    world["user_b"] = made("/admin/users", name="bob", team_id=world["team_b"]["id"])
    world["key_of_no_team"] = made("/admin/keys", models=[gateways.MODEL])
    world["user_of_no_team"] = made("/admin/users", name="nobody")
    for name, role, team in [
        ("team_admin", "team_admin", "team_a"),
        ("viewer", "viewer", "team_a"),
        ("viewer_b", "viewer", "team_b"),
        ("viewer_of_all", "viewer", None),
    ]:
        team_id = world[team]["id"] if team else None
        world[name] = made("/admin/tokens", role=role, team_id=team_id, name=name)
    return world


def as_(gateway: GatewayProcess, world: dict[str, Any], who: str) -> As:
    return As(gateway, world[who]["token"])


def call(who: As, method: str, path: str, body: dict[str, Any] | None, id_: str) -> httpx.Response:
    """``path`` and ``body`` with ``{id}`` replaced by ``id_``."""
    filled = json.loads(json.dumps(body).replace("{id}", id_)) if body is not None else None
    return who(method, path.replace("{id}", id_), json=filled)


def answer(response: httpx.Response, id_: str) -> tuple[int, Any]:
    """Status and body, with the id the caller sent (which the message may echo) blanked out."""
    return response.status_code, json.loads(response.text.replace(id_, "<id>"))


def audit_since(gateway: GatewayProcess, seq: int, id_: str) -> Any:
    """The audit rows after ``seq``, without time, seq, hashes or the id the caller sent."""
    entries = gateway.admin("GET", "/admin/audit").json()["data"]
    fields = ("actor", "role", "action", "target", "detail")
    kept = [{k: e[k] for k in fields} for e in entries if e["seq"] > seq]
    return json.loads(json.dumps(kept).replace(id_, "<id>"))


def last_seq(gateway: GatewayProcess) -> int:
    entries = gateway.admin("GET", "/admin/audit", params={"limit": 1}).json()["data"]
    return int(entries[0]["seq"]) if entries else 0


def _budget(scope: str) -> dict[str, Any]:
    return {"scope": scope, "scope_id": "{id}", "period": "weekly", "max_usd": "1000"}


# Every admin route that takes an id: method, path, body ("{id}" marks where the id goes), and
# the object of the world, out of team A's sight, whose id it is given.
ROUTES: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("GET", "/admin/keys/{id}", None, "key_b"),
    ("GET", "/admin/keys/{id}", None, "key_of_no_team"),
    ("PATCH", "/admin/keys/{id}", {"rpm_limit": 1}, "key_b"),
    ("DELETE", "/admin/keys/{id}", None, "key_b"),
    ("POST", "/admin/keys", {"models": [gateways.MODEL], "team_id": "{id}"}, "team_b"),
    ("POST", "/admin/keys", {"models": [gateways.MODEL], "user_id": "{id}"}, "user_b"),
    ("POST", "/admin/keys", {"models": [gateways.MODEL], "user_id": "{id}"}, "user_of_no_team"),
    ("GET", "/admin/teams/{id}", None, "team_b"),
    ("PATCH", "/admin/teams/{id}", {"rpm_limit": 1}, "team_b"),
    ("POST", "/admin/users", {"name": "eve", "team_id": "{id}"}, "team_b"),
    ("PATCH", "/admin/budgets/{id}", {"max_usd": "1000"}, "member_budget_b"),
    ("PATCH", "/admin/budgets/{id}", {"max_usd": "1000"}, "team_budget_b"),
    ("DELETE", "/admin/budgets/{id}", None, "member_budget_b"),
    ("DELETE", "/admin/budgets/{id}", None, "team_budget_b"),
    ("POST", "/admin/budgets", _budget("key"), "key_b"),
    ("POST", "/admin/budgets", _budget("user"), "user_b"),
    ("POST", "/admin/budgets", _budget("team"), "team_b"),
    ("POST", "/admin/tokens", {"role": "viewer", "team_id": "{id}", "name": "x"}, "team_b"),
    ("DELETE", "/admin/tokens/{id}", None, "viewer_b"),
    ("DELETE", "/admin/tokens/{id}", None, "viewer"),  # no token is in a scoped caller's sight
    ("GET", "/admin/reports/spend?team_id={id}", None, "team_b"),
]


@pytest.mark.parametrize("caller", ["team_admin", "viewer"])
@pytest.mark.parametrize(
    ("method", "path", "body", "target"), ROUTES, ids=[f"{m} {p} {t}" for m, p, _, t in ROUTES]
)
def test_an_id_out_of_a_scoped_callers_sight_is_answered_as_an_unknown_id(
    gateway: GatewayProcess,
    world: dict[str, Any],
    caller: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    target: str,
) -> None:
    who = as_(gateway, world, caller)
    real, unknown = world[target]["id"], secrets.token_hex(8)
    assert len(real) == len(unknown)

    start = last_seq(gateway)
    seen = answer(call(who, method, path, body, real), real)
    audited_seen = audit_since(gateway, start, real)
    start = last_seq(gateway)
    missing = answer(call(who, method, path, body, unknown), unknown)
    audited_missing = audit_since(gateway, start, unknown)

    assert seen == missing
    assert seen[0] == 404, seen
    assert seen[1]["error"]["code"].endswith("_not_found"), seen
    assert audited_seen == audited_missing


# What a scoped caller may see but not do: refused with 403, as before.
SEEN_NOT_ALLOWED: list[tuple[str, str, str, dict[str, Any] | None, str]] = [
    ("team_admin", "PATCH", "/admin/teams/{id}", {"rpm_limit": 1}, "team_a"),
    ("team_admin", "PATCH", "/admin/budgets/{id}", {"max_usd": "1000"}, "team_budget_a"),
    ("team_admin", "DELETE", "/admin/budgets/{id}", None, "team_budget_a"),
    ("team_admin", "POST", "/admin/budgets", _budget("team"), "team_a"),
    (
        "team_admin",
        "POST",
        "/admin/tokens",
        {"role": "viewer", "team_id": "{id}", "name": "x"},
        "team_a",
    ),
    ("viewer", "PATCH", "/admin/keys/{id}", {"rpm_limit": 1}, "key_a"),
    ("viewer", "DELETE", "/admin/keys/{id}", None, "key_a"),
    ("viewer", "POST", "/admin/keys", {"models": [gateways.MODEL], "team_id": "{id}"}, "team_a"),
    ("viewer", "POST", "/admin/users", {"name": "val", "team_id": "{id}"}, "team_a"),
    ("viewer", "PATCH", "/admin/budgets/{id}", {"max_usd": "1000"}, "member_budget_a"),
    ("viewer", "DELETE", "/admin/budgets/{id}", None, "member_budget_a"),
    ("viewer", "POST", "/admin/budgets", _budget("key"), "key_a"),
    ("viewer_of_all", "DELETE", "/admin/keys/{id}", None, "key_b"),
    ("viewer_of_all", "PATCH", "/admin/teams/{id}", {"rpm_limit": 1}, "team_b"),
    ("viewer_of_all", "PATCH", "/admin/budgets/{id}", {"max_usd": "1000"}, "member_budget_b"),
]


@pytest.mark.parametrize(
    ("caller", "method", "path", "body", "target"),
    SEEN_NOT_ALLOWED,
    ids=[f"{c} {m} {p} {t}" for c, m, p, _, t in SEEN_NOT_ALLOWED],
)
def test_a_caller_that_may_see_the_object_but_not_do_this_is_refused_with_403(
    gateway: GatewayProcess,
    world: dict[str, Any],
    caller: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    target: str,
) -> None:
    response = call(as_(gateway, world, caller), method, path, body, world[target]["id"])
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("caller", ["team_admin", "viewer"])
def test_a_scoped_caller_still_reads_its_own_teams_objects_by_id(
    gateway: GatewayProcess, world: dict[str, Any], caller: str
) -> None:
    who = as_(gateway, world, caller)
    team_a = world["team_a"]["id"]
    for path in (
        f"/admin/keys/{world['key_a']['id']}",
        f"/admin/teams/{team_a}",
        f"/admin/reports/spend?team_id={team_a}",
    ):
        response = who("GET", path)
        assert response.status_code == 200, (path, response.text)
