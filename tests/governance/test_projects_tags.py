"""Projects and tags as first-class (issue 21, item 3): the allowed set per key and team, request
limits and budgets per project and per tag, reports grouped by tag. Real database (SQLite and
PostgreSQL) and real counters (in process and Redis), as test_admission.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from gateway.errors import BudgetExceeded, PermissionDenied, RateLimited
from gateway.governance import reports
from gateway.governance.core import Governance
from gateway.governance.counters import Counters, MemoryCounters
from gateway.governance.pricing import nanos
from gateway.governance.redis_counters import RedisCounters
from gateway.governance.spend import Outbox
from gateway.governance.tenancy import Scope
from gateway.serve import parse_config
from gateway.store.keys import KeyRecord
from gateway.values import Usage
from tests.governance.conftest import REDIS_URL
from tests.governance.test_admission import BODY, CONFIG, Clock, M, drained, key

pytestmark = pytest.mark.anyio

CONFIGURED = parse_config(
    CONFIG + "  projects:\n    etl: {rpm: 3}\n  tags:\n    nightly: {tpm: 54}\n", "test"
)
USED = Usage(prompt_tokens=11, completion_tokens=5)  # $0.021; 18 tokens reserved


def project(name: str, tags: str = "") -> dict[bytes, bytes]:
    headers = {b"x-sealgate-project": name.encode()}
    if tags:
        headers[b"x-sealgate-tags"] = tags.encode()
    return headers


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def governance(
    request: pytest.FixtureRequest, engine: Engine, tmp_path: Path, redis_prefix: str
) -> AsyncIterator[Governance]:
    clock = Clock(datetime(2026, 3, 5, 12, 0, 1, tzinfo=UTC))
    counters: Counters = (
        MemoryCounters(clock)
        if request.param == "memory"
        else RedisCounters(REDIS_URL, redis_prefix, 2.0)
    )
    outbox = Outbox(engine, tmp_path, 0.01, 0.05)
    outbox.start()
    gov = Governance(
        CONFIGURED.governance, CONFIGURED.deployments, engine, outbox, counters, clock=clock
    )
    gov.refresh()
    yield gov
    await gov.close()


async def through(
    gov: Governance, records: list[KeyRecord], count: int, headers: dict[bytes, bytes]
) -> int:
    """``count`` concurrent requests over ``records``; how many were admitted."""

    async def one(i: int) -> int:
        try:
            admission = await gov.admit(records[i % len(records)], "m", BODY, headers)
        except (RateLimited, BudgetExceeded):
            return 0
        await asyncio.sleep(0.01)
        admission.settle(USED, M, "ok")
        return 1

    admitted = sum(await asyncio.gather(*(one(i) for i in range(count))))
    await drained(gov)
    return admitted


async def test_a_client_naming_a_project_outside_its_keys_allowed_set_is_refused(
    governance: Governance, engine: Engine
) -> None:
    record = key(engine, metadata={"allowed_projects": ["risk", "fraud"]})
    with pytest.raises(PermissionDenied) as refused:
        await governance.admit(record, "m", BODY, project("marketing"))
    assert refused.value.code == "project_not_allowed"
    assert "'marketing' is not allowed for this key; allowed: fraud, risk" in str(refused.value)
    admission = await governance.admit(record, "m", BODY, project("risk"))
    assert admission.project == "risk"
    admission.settle(USED, M, "ok")


async def test_a_teams_allowed_tags_bound_every_key_of_the_team(
    governance: Governance, engine: Engine
) -> None:
    team = governance.tenancy.create_team("t", None, None, {"allowed_tags": ["batch", "eval"]})
    governance.refresh()
    record = key(engine, team_id=team.id)
    with pytest.raises(PermissionDenied) as refused:
        await governance.admit(record, "m", BODY, project("p", "batch, adhoc"))
    assert refused.value.code == "tag_not_allowed"
    assert "adhoc not allowed for this team" in str(refused.value)
    admission = await governance.admit(record, "m", BODY, project("p", "eval,batch"))
    assert admission.tags == ("batch", "eval")
    admission.settle(USED, M, "ok")


async def test_a_project_rpm_limit_holds_across_every_key_that_names_the_project(
    governance: Governance, engine: Engine
) -> None:
    records = [key(engine) for _ in range(3)]
    assert await through(governance, records, 12, project("etl")) == 3
    assert await through(governance, records, 4, project("other")) == 4  # no limit there


async def test_a_tag_tpm_limit_holds_across_projects(
    governance: Governance, engine: Engine
) -> None:
    records = [key(engine) for _ in range(2)]
    assert await through(governance, records, 10, project("a", "nightly")) == 3  # 3 x 18 = 54
    assert await through(governance, records, 2, project("b", "nightly")) == 0


@pytest.mark.parametrize(
    ("scope", "headers"), [("project", project("p1")), ("tag", project("x", "gpu"))]
)
async def test_a_project_or_tag_budget_is_never_exceeded_by_concurrent_requests_of_many_keys(
    governance: Governance, engine: Engine, scope: str, headers: dict[bytes, bytes]
) -> None:
    value = "p1" if scope == "project" else "gpu"
    budget_scope: Scope = "project" if scope == "project" else "tag"
    governance.tenancy.create_budget(budget_scope, value, "daily", nanos(Decimal("0.10")), None)
    governance.refresh()
    records = [key(engine) for _ in range(3)]
    admitted = await through(governance, records, 30, headers)
    assert admitted > 0 and admitted * 21_000_000 <= nanos(Decimal("0.10"))
    assert await through(governance, records, 3, project("elsewhere")) == 3


async def test_reports_group_spend_by_tag_and_count_each_request_once_in_the_totals(
    governance: Governance, engine: Engine
) -> None:
    record = key(engine)
    for tags in ("a, b", "b", ""):
        (await governance.admit(record, "m", BODY, project("p", tags))).settle(USED, M, "ok")
    assert governance.outbox.flush()
    body = reports.spend_report(engine, "tag", None, None, None)
    assert [(row["tag"], row["requests"]) for row in body["data"]] == [
        ("a", 1),
        ("b", 2),
        (None, 1),
    ]
    assert body["totals"]["requests"] == 3
