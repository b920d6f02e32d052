"""Project and tag limits through the admin API (issue 21, item 3): set by the gateway admin,
they override the config's entry of the same name, apply at once on the replica that served the
change and within ``refresh_seconds`` on another, are audited, and come back to the config's when
deleted. Real database (SQLite and PostgreSQL), real counters, real gateway processes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from gateway.governance.core import Governance
from gateway.governance.counters import MemoryCounters
from gateway.governance.spend import Outbox
from tests.governance import gateways
from tests.governance.conftest import REDIS_URL
from tests.governance.test_admission import BODY, Clock, key
from tests.governance.test_projects_tags import CONFIGURED, project, through
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.anyio


CLOCK = datetime(2026, 3, 5, 12, 0, 1, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(CLOCK)


@pytest.fixture
async def governance(engine: Engine, tmp_path: Path, clock: Clock) -> AsyncIterator[Governance]:
    outbox = Outbox(engine, tmp_path, 0.01, 0.05)
    outbox.start()
    gov = Governance(
        CONFIGURED.governance,
        CONFIGURED.deployments,
        engine,
        outbox,
        MemoryCounters(clock),
        clock=clock,
    )
    gov.refresh()
    yield gov
    await gov.close()


async def test_an_admin_set_project_limit_overrides_the_configs_and_deleting_it_restores_it(
    governance: Governance, engine: Engine, clock: Clock
) -> None:
    records = [key(engine) for _ in range(2)]
    governance.tenancy.set_scope_limits("project", "etl", 5, None, "admin")
    governance.refresh()
    assert await through(governance, records, 8, project("etl")) == 5  # the config says 3
    assert governance.tenancy.delete_scope_limits("project", "etl")
    assert not governance.tenancy.delete_scope_limits("project", "etl")
    governance.refresh()
    clock.now += 60  # the next minute's window
    assert await through(governance, records, 8, project("etl")) == 3


async def test_an_admin_set_tag_limit_applies_to_a_tag_the_config_does_not_name(
    governance: Governance, engine: Engine
) -> None:
    records = [key(engine)]
    governance.tenancy.set_scope_limits("tag", "gpu", 2, None, "admin")
    governance.tenancy.set_scope_limits("tag", "gpu", 3, None, "admin")  # replaced, not added
    governance.refresh()
    assert [(s.scope_id, s.rpm_limit) for s in governance.tenancy.scope_limits()] == [("gpu", 3)]
    assert await through(governance, records, 6, project("p", "gpu")) == 3
    assert (await governance.admit(records[0], "m", BODY, project("p", "cpu"))) is not None


@pytest.fixture
def pair(
    upstream: FakeUpstream,
    tmp_path: Path,
    postgres_database: Callable[[], str],
    redis_prefix: str,
) -> Iterator[list[GatewayProcess]]:
    """Two replicas on PostgreSQL and Redis whose config limits project ``etl`` to 50 RPM."""
    text = gateways.config(
        upstream, storage_url=postgres_database(), redis={"url": REDIS_URL, "prefix": redis_prefix}
    )
    text = text.replace("governance:\n", "governance:\n  projects:\n    etl: {rpm: 50}\n", 1)
    with gateways.pair(tmp_path, text) as replicas:
        yield replicas


def statuses(gateway: GatewayProcess, key: str, name: str, count: int) -> list[int]:
    headers = {"Authorization": f"Bearer {key}", "x-sealgate-project": name}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as client:
        return [
            client.post("/v1/chat/completions", json=gateways.BODY).status_code
            for _ in range(count)
        ]


def token(gateway: GatewayProcess, role: str, team_id: str | None = None) -> gateways.As:
    made = gateway.admin(
        "POST", "/admin/tokens", json={"role": role, "team_id": team_id, "name": role}
    )
    assert made.status_code == 201, made.text
    return gateways.As(gateway, made.json()["token"])


@pytest.mark.postgres
@pytest.mark.redis
def test_a_project_limit_set_through_the_admin_api_holds_on_both_replicas_and_is_audited(
    pair: list[GatewayProcess],
) -> None:
    first, second = pair
    key = first.create_key([gateways.MODEL])["key"]
    put = first.admin("PUT", "/admin/limits/project/etl", json={"rpm_limit": 3})
    assert put.status_code == 200, put.text
    assert put.json() | {"updated_at": None} == {
        "scope": "project",
        "scope_id": "etl",
        "rpm_limit": 3,
        "tpm_limit": None,
        "source": "admin",
        "updated_by": "admin",
        "updated_at": None,
    }
    gateways.wait_for_window()
    assert statuses(first, key, "etl", 2) == [200, 200]  # at once where it was set
    time.sleep(1)  # the other replica's snapshot (refresh_seconds 0.5) holds it now
    assert statuses(second, key, "etl", 2) == [200, 429]  # 3 across both, not 50
    assert statuses(first, key, "other", 2) == [200, 200]  # another project is not limited

    listed = first.admin("GET", "/admin/limits").json()["data"]
    assert [(r["scope"], r["scope_id"], r["rpm_limit"], r["source"]) for r in listed] == [
        ("project", "etl", 3, "admin")
    ]
    gone = first.admin("DELETE", "/admin/limits/project/etl")
    assert gone.status_code == 204
    listed = first.admin("GET", "/admin/limits").json()["data"]
    assert [(r["scope_id"], r["rpm_limit"], r["source"]) for r in listed] == [("etl", 50, "config")]
    again = first.admin("DELETE", "/admin/limits/project/etl")
    assert again.status_code == 404 and again.json()["error"]["code"] == "limit_not_found"

    audit = first.admin("GET", "/admin/audit").json()
    assert audit["chain_broken_at"] is None
    changes = [(e["action"], e["target"]) for e in audit["data"] if e["target"] == "project:etl"]
    assert sorted(changes) == [("limits.delete", "project:etl"), ("limits.set", "project:etl")]
    assert key not in str(audit)


@pytest.mark.postgres
@pytest.mark.redis
def test_only_the_gateway_admin_sets_project_limits_and_only_unscoped_readers_list_them(
    pair: list[GatewayProcess],
) -> None:
    first, _ = pair
    team = first.admin("POST", "/admin/teams", json={"name": "risk"}).json()
    team_admin = token(first, "team_admin", team["id"])
    viewer = token(first, "viewer")
    team_viewer = token(first, "viewer", team["id"])
    for who in (team_admin, viewer, team_viewer):
        refused = who("PUT", "/admin/limits/project/etl", json={"rpm_limit": 1})
        assert refused.status_code == 403, refused.text
        assert who("DELETE", "/admin/limits/project/etl").status_code == 403
    assert viewer("GET", "/admin/limits").status_code == 200
    assert team_admin("GET", "/admin/limits").status_code == 403
    assert team_viewer("GET", "/admin/limits").status_code == 403


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/admin/limits/team/etl", {"rpm_limit": 1}, 400),  # not a project or tag
        ("/admin/limits/project/etl", {"rpm_limit": -1}, 400),
        ("/admin/limits/project/etl", {"rpm": 1}, 400),  # unknown field
        ("/admin/limits/tag/" + "t" * 65, {"rpm_limit": 1}, 404),  # longer than a tag can be
    ],
)
def test_a_malformed_limit_change_is_refused_with_a_clear_error_and_changes_nothing(
    pair: list[GatewayProcess], path: str, body: dict[str, int], status: int
) -> None:
    first, _ = pair
    refused = first.admin("PUT", path, json=body)
    assert refused.status_code == status, refused.text
    assert refused.json()["error"]["message"]
    listed = first.admin("GET", "/admin/limits").json()["data"]
    assert [(r["scope_id"], r["source"]) for r in listed] == [("etl", "config")]
