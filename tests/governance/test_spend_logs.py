"""``GET /admin/spend/logs`` (issue 17, item 4): the spend records themselves, newest first,
filtered by key, team, user, project, model, status and time, paged by a cursor that visits
every record exactly once, and scoped by role (a team's caller sees its team's records only,
and another team's id answers as an unknown one). On SQLite and PostgreSQL, against a real
gateway process."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.governance import gateways
from tests.governance.gateways import As
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

CANARY_PROMPT = "canary prompt words " + secrets.token_hex(8)


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
    module_storage_url: str | None,
) -> Iterator[GatewayProcess]:
    workdir: Path = tmp_path_factory.mktemp("spendlogs")
    text = gateways.config(upstream_server, storage_url=module_storage_url)
    with gateways.running(workdir, text) as process:
        yield process


@pytest.fixture(scope="module")
def world(gateway: GatewayProcess, upstream_server: FakeUpstream) -> dict[str, Any]:
    """Team A: a key of user ann with project alpha (5 calls) and a key without (2 calls); team
    B: a key (3 calls, the last one failing upstream). Admin tokens for each team and all."""
    admin = As(gateway, gateway.admin_key)

    def made(path: str, **body: Any) -> dict[str, Any]:
        response = admin("POST", path, json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    w: dict[str, Any] = {"since": datetime.now(UTC) - timedelta(seconds=1)}
    w["team_a"] = made("/admin/teams", name="a")
    w["team_b"] = made("/admin/teams", name="b")
    w["ann"] = made("/admin/users", name="ann", team_id=w["team_a"]["id"])
    w["key_alpha"] = made(
        "/admin/keys",
        models=[gateways.MODEL],
        team_id=w["team_a"]["id"],
        user_id=w["ann"]["id"],
        metadata={"project": "alpha"},
    )
    w["key_a"] = made("/admin/keys", models=[gateways.MODEL], team_id=w["team_a"]["id"])
    w["key_b"] = made("/admin/keys", models=[gateways.MODEL], team_id=w["team_b"]["id"])
    for name, role, team in (
        ("admin_a", "team_admin", w["team_a"]["id"]),
        ("viewer_a", "viewer", w["team_a"]["id"]),
        ("viewer_all", "viewer", None),
        ("metrics", "metrics", None),
    ):
        w[name] = made("/admin/tokens", role=role, name=name, team_id=team)["token"]
    prompt = [{"role": "user", "content": CANARY_PROMPT}]
    for _ in range(5):
        assert gateways.chat(gateway, w["key_alpha"]["key"], messages=prompt).status_code == 200
    for _ in range(2):
        assert gateways.chat(gateway, w["key_a"]["key"]).status_code == 200
    for _ in range(2):
        assert gateways.chat(gateway, w["key_b"]["key"]).status_code == 200
    upstream_server.reset()
    upstream_server.then(status=500)
    assert gateways.chat(gateway, w["key_b"]["key"]).status_code >= 500
    upstream_server.reset()
    deadline = time.monotonic() + 30  # the records reach the database off the hot path
    while len(everything(admin)) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    return w


def everything(caller: As, **query: Any) -> list[dict[str, Any]]:
    """Every record the caller may see, page by page (3 a page)."""
    records: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**query, "limit": 3, **({"cursor": cursor} if cursor else {})}
        response = caller("GET", "/admin/spend/logs", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= 3
        records += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return records


def test_pages_visit_every_record_once_newest_first(
    gateway: GatewayProcess, world: dict[str, Any]
) -> None:
    records = everything(As(gateway, gateway.admin_key))
    assert len(records) == 10 and len({r["id"] for r in records}) == 10
    order = [(r["at"], r["id"]) for r in records]
    assert order == sorted(order, reverse=True)
    ok = [r for r in records if r["status"] == "ok"]
    assert len(ok) == 9
    assert all(r["cost_usd"] == "0.025000000" and r["prompt_tokens"] == 11 for r in ok)
    assert all(r["deployment"] == gateways.DEPLOYMENT for r in ok)


@pytest.mark.parametrize(
    ("query", "count"),
    [
        (lambda w: {"key_id": w["key_alpha"]["id"]}, 5),
        (lambda w: {"team_id": w["team_a"]["id"]}, 7),
        (lambda w: {"team_id": w["team_b"]["id"], "status": "ok"}, 2),
        (lambda w: {"user_id": w["ann"]["id"]}, 5),
        (lambda w: {"project": "alpha"}, 5),
        (lambda w: {"model": gateways.MODEL}, 10),
        (lambda w: {"model": "other"}, 0),
        (lambda w: {"status": "upstream_error"}, 1),
        (lambda w: {"start": w["since"].isoformat()}, 10),
        (lambda w: {"end": w["since"].isoformat()}, 0),
        (lambda w: {"start": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}, 0),
    ],
)
def test_filters_narrow_the_records(
    gateway: GatewayProcess, world: dict[str, Any], query: Any, count: int
) -> None:
    records = everything(As(gateway, gateway.admin_key), **query(world))
    assert len(records) == count
    for name, value in query(world).items():
        if name not in ("start", "end"):
            assert all(r[name] == value for r in records)


def test_a_team_caller_sees_its_teams_records_only(
    gateway: GatewayProcess, world: dict[str, Any]
) -> None:
    team_a = world["team_a"]["id"]
    for token in ("admin_a", "viewer_a"):
        caller = As(gateway, world[token])
        records = everything(caller)
        assert len(records) == 7 and {r["team_id"] for r in records} == {team_a}
        # a key of another team: nothing, as for a key that does not exist
        assert everything(caller, key_id=world["key_b"]["id"]) == []
        other = caller("GET", "/admin/spend/logs", params={"team_id": world["team_b"]["id"]})
        unknown = caller("GET", "/admin/spend/logs", params={"team_id": "0" * 16})
        assert other.status_code == unknown.status_code == 404
    assert len(everything(As(gateway, world["viewer_all"]))) == 10
    metrics_only = As(gateway, world["metrics"])("GET", "/admin/spend/logs")
    assert metrics_only.status_code == 403


def test_a_cursor_not_given_out_is_refused_clearly(
    gateway: GatewayProcess, world: dict[str, Any]
) -> None:
    for bad in ("nonsense", "W10", "e30"):
        response = As(gateway, gateway.admin_key)(
            "GET", "/admin/spend/logs", params={"cursor": bad}
        )
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "cursor"


def test_spend_logs_hold_no_key_and_no_content(
    gateway: GatewayProcess, world: dict[str, Any]
) -> None:
    text = As(gateway, gateway.admin_key)("GET", "/admin/spend/logs", params={"limit": 1000}).text
    for secret in (world["key_alpha"]["key"], world["key_b"]["key"], world["admin_a"]):
        assert secret not in text
    assert CANARY_PROMPT not in text and FakeUpstream.REPLY_TEXT not in text
