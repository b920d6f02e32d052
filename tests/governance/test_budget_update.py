"""PATCH /admin/budgets/{id} through a real gateway process, on SQLite and on PostgreSQL: new
amounts apply to the very next request (the gateway reloads its snapshot in the background only
once an hour here, so only the update's own refresh can make that so), the roles that may create
a budget are the roles that may change it, bad bodies are refused with a clear message, and
every change is audited with the amounts before and after."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.governance import gateways
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
    module_storage_url: str | None,
) -> Iterator[GatewayProcess]:
    """One gateway per store for the module: each test makes its own keys, teams and budgets
    and reads only the audit rows of those."""
    text = gateways.config(upstream_server, storage_url=module_storage_url, refresh_seconds=3600)
    with gateways.running(tmp_path_factory.mktemp("budgets"), text) as process:
        yield process


def create_budget(gateway: GatewayProcess, credential: str | None = None, **spec: Any) -> str:
    response = as_(gateway, credential)("POST", "/admin/budgets", json=spec)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def as_(gateway: GatewayProcess, credential: str | None) -> Callable[..., httpx.Response]:
    def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {credential or gateway.admin_key}"}
        return httpx.request(method, gateway.url + path, headers=headers, timeout=10, **kwargs)

    return call


def amounts(gateway: GatewayProcess, budget_id: str) -> tuple[str, str | None]:
    listed = gateway.admin("GET", "/admin/budgets").json()["data"]
    found = next(b for b in listed if b["id"] == budget_id)
    return found["max_usd"], found["soft_usd"]


def token(gateway: GatewayProcess, role: str, team_id: str) -> dict[str, Any]:
    response = gateway.admin(
        "POST", "/admin/tokens", json={"role": role, "team_id": team_id, "name": role}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_lowered_hard_limit_refuses_the_next_call_and_a_raised_one_admits_it(
    gateway: GatewayProcess,
) -> None:
    key = gateway.create_key([gateways.MODEL])
    budget_id = create_budget(
        gateway, scope="key", scope_id=key["id"], period="monthly", max_usd="1", soft_usd="0.5"
    )
    assert [gateways.chat(gateway, key["key"]).status_code for _ in range(2)] == [200, 200]

    # $0.05 spent; the next call reserves $0.033, which no longer fits under $0.06.
    lowered = gateway.admin(
        "PATCH", f"/admin/budgets/{budget_id}", json={"max_usd": "0.06", "soft_usd": None}
    )
    assert lowered.status_code == 200, lowered.text
    view = lowered.json()
    assert (view["id"], view["max_usd"], view["soft_usd"]) == (budget_id, "0.060000000", None)
    refused = gateways.chat(gateway, key["key"])
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"

    raised = gateway.admin("PATCH", f"/admin/budgets/{budget_id}", json={"max_usd": "1"})
    assert raised.status_code == 200, raised.text
    assert gateways.chat(gateway, key["key"]).status_code == 200


def test_an_update_keeps_the_budget_and_is_audited_with_before_and_after_and_no_key(
    gateway: GatewayProcess,
) -> None:
    key = gateway.create_key([gateways.MODEL])
    budget_id = create_budget(
        gateway, scope="key", scope_id=key["id"], period="daily", max_usd="5", soft_usd="4"
    )
    changed = gateway.admin(
        "PATCH", f"/admin/budgets/{budget_id}", json={"max_usd": "8", "soft_usd": "6.5"}
    )
    assert changed.status_code == 200, changed.text
    view = changed.json()
    assert {k: view[k] for k in ("id", "scope", "scope_id", "period")} == {
        "id": budget_id,
        "scope": "key",
        "scope_id": key["id"],
        "period": "daily",
    }
    assert amounts(gateway, budget_id) == ("8.000000000", "6.500000000")
    removed = gateway.admin("PATCH", f"/admin/budgets/{budget_id}", json={"soft_usd": None})
    assert removed.status_code == 200, removed.text
    assert amounts(gateway, budget_id) == ("8.000000000", None)

    audit = gateway.admin("GET", "/admin/audit").json()
    assert audit["chain_broken_at"] is None
    updates = [e for e in audit["data"] if e["target"] == f"budget:{budget_id}"]
    updates = [e for e in updates if e["action"] == "budget.update"]
    assert [(e["actor"], e["target"]) for e in updates] == [("admin", f"budget:{budget_id}")] * 2
    assert [e["detail"] for e in reversed(updates)] == [
        {
            "before": {"max_usd": "5.000000000", "soft_usd": "4.000000000"},
            "after": {"max_usd": "8.000000000", "soft_usd": "6.500000000"},
        },
        {
            "before": {"max_usd": "8.000000000", "soft_usd": "6.500000000"},
            "after": {"max_usd": "8.000000000", "soft_usd": None},
        },
    ]
    assert key["key"] not in json.dumps(audit)


def test_a_team_admin_may_change_only_its_members_budgets_and_a_viewer_none(
    gateway: GatewayProcess,
) -> None:
    team_a = gateway.admin("POST", "/admin/teams", json={"name": "team-a"}).json()["id"]
    team_b = gateway.admin("POST", "/admin/teams", json={"name": "team-b"}).json()["id"]
    key_a = gateway.create_key([gateways.MODEL], team_id=team_a)["id"]
    key_b = gateway.create_key([gateways.MODEL], team_id=team_b)["id"]
    ceiling = create_budget(gateway, scope="team", scope_id=team_a, period="monthly", max_usd="100")
    member = create_budget(gateway, scope="key", scope_id=key_a, period="daily", max_usd="5")
    other = create_budget(gateway, scope="key", scope_id=key_b, period="daily", max_usd="5")
    team_admin = token(gateway, "team_admin", team_a)
    viewer = token(gateway, "viewer", team_a)
    as_team_admin = as_(gateway, team_admin["token"])

    allowed = as_team_admin("PATCH", f"/admin/budgets/{member}", json={"max_usd": "7"})
    assert allowed.status_code == 200, allowed.text
    attempts = [
        (as_team_admin, ceiling, 403),  # its own team's ceiling is the gateway admin's to set
        (as_team_admin, other, 404),  # another team's key's: out of sight, as an unknown id
        (as_(gateway, viewer["token"]), member, 403),
    ]
    for call, budget_id, status in attempts:
        refused = call("PATCH", f"/admin/budgets/{budget_id}", json={"max_usd": "1000000"})
        assert refused.status_code == status, refused.text
    assert amounts(gateway, ceiling) == ("100.000000000", None)
    assert amounts(gateway, member) == ("7.000000000", None)
    assert amounts(gateway, other) == ("5.000000000", None)

    unknown = gateway.admin("PATCH", "/admin/budgets/0000000000000000", json={"max_usd": "1"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "budget_not_found"

    audit = gateway.admin("GET", "/admin/audit").json()["data"]
    mine = {f"budget:{b}" for b in (ceiling, member, other)}
    updates = [(e["actor"], e["target"]) for e in audit if e["action"] == "budget.update"]
    assert [u for u in updates if u[1] in mine] == [
        (f"token:{team_admin['id']}", f"budget:{member}")
    ]


# A body, the param the error names, and what its message says. The budget is $1, soft $0.50.
BAD_BODIES: list[tuple[dict[str, Any], str | None, str]] = [
    ({"period": "weekly"}, "period", "period cannot be changed"),
    ({"scope": "team", "max_usd": "2"}, "scope", "scope cannot be changed"),
    ({"scope_id": "0000000000000000"}, "scope_id", "scope_id cannot be changed"),
    ({"max_usd": None}, "max_usd", "always has a hard limit"),
    ({"max_usd": "-1"}, "max_usd", "greater than or equal to 0"),
    ({"soft_usd": "abc"}, "soft_usd", "valid decimal"),
    ({"soft_usd": "2"}, "soft_usd", "soft_usd must not be above max_usd (1.000000000)"),
    ({"max_usd": "0.1"}, "max_usd", "must not be below the budget's soft_usd (0.500000000)"),
    ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
    ({}, None, "nothing to change"),
]


def test_a_bad_update_is_refused_with_a_clear_message_and_changes_nothing(
    gateway: GatewayProcess,
) -> None:
    key = gateway.create_key([gateways.MODEL])
    budget_id = create_budget(
        gateway, scope="key", scope_id=key["id"], period="daily", max_usd="1", soft_usd="0.5"
    )
    for body, param, says in BAD_BODIES:
        response = gateway.admin("PATCH", f"/admin/budgets/{budget_id}", json=body)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert (error["param"], says in error["message"]) == (param, True), (body, error)
    assert amounts(gateway, budget_id) == ("1.000000000", "0.500000000")
    audit = gateway.admin("GET", "/admin/audit").json()["data"]
    assert not [
        e for e in audit if e["action"] == "budget.update" and e["target"] == f"budget:{budget_id}"
    ]
