"""Budget alerts (issue 21, item 4): a soft threshold and a hard limit, each recorded and
delivered once per budget and period across every replica, listed by the admin API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from gateway.config import WebhookSink
from gateway.errors import BudgetExceeded
from gateway.governance.alerts import AlertSink, BudgetAlert
from gateway.governance.core import Governance
from gateway.governance.pricing import nanos
from gateway.governance.redis_counters import RedisCounters
from gateway.governance.sink_queue import SinkQueue
from gateway.governance.sinks import AlertEvents, QueueSink, Sinks
from gateway.governance.spend import Outbox
from gateway.store.keys import KeyStore
from gateway.values import Usage
from tests.governance import gateways
from tests.governance.conftest import REDIS_URL
from tests.governance.test_admission import BODY, CONFIGURED, M
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

URL = "https://alerts.example.com/hook"


class Recording:
    """A sink that keeps what it was given (the webhook sink of issue 17 takes its place)."""

    def __init__(self) -> None:
        self.delivered: list[BudgetAlert] = []

    async def deliver(self, alert: BudgetAlert) -> None:
        self.delivered.append(alert)


class Failing:
    async def deliver(self, alert: BudgetAlert) -> None:
        raise ConnectionError("the webhook is down")


async def past_both_lines(
    engine: Engine, tmp_path: Path, redis_prefix: str, sinks: list[AlertSink]
) -> tuple[list[Governance], str]:
    """One in-process replica per alert sink, on one database and one Redis, spending a team's
    daily budget (0.10 USD, soft at 0.05) past both its lines; the replicas and the budget id."""
    replicas = []
    for index, sink in enumerate(sinks):
        (tmp_path / str(index)).mkdir()
        outbox = Outbox(engine, tmp_path / str(index), 0.01, 0.05)
        outbox.start()
        counters = RedisCounters(REDIS_URL, redis_prefix, 2.0)
        settings, deployments = CONFIGURED.governance, CONFIGURED.deployments
        gov = Governance(settings, deployments, engine, outbox, counters, alert_sink=sink)
        replicas.append(gov)
    team = replicas[0].tenancy.create_team("t", None, None, {})
    budget = replicas[0].tenancy.create_budget(
        "team", team.id, "daily", nanos(Decimal("0.10")), nanos(Decimal("0.05"))
    )
    for gov in replicas:
        gov.refresh()
    record = KeyStore(engine).create(["*"], team_id=team.id)[1]

    async def one(gov: Governance) -> None:
        try:
            admission = await gov.admit(record, "m", BODY, {})
        except BudgetExceeded:
            return
        admission.settle(Usage(prompt_tokens=11, completion_tokens=5), M, "ok")

    await asyncio.gather(*(one(replicas[i % len(replicas)]) for i in range(20)))
    await asyncio.gather(*(gov.alerts.drain() for gov in replicas))
    return replicas, budget.id


class Flaky:
    """A sink that fails its first ``failures`` calls (the webhook down for a while)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.delivered: list[BudgetAlert] = []

    async def deliver(self, alert: BudgetAlert) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("the webhook is down")
        self.delivered.append(alert)


@pytest.mark.redis
@pytest.mark.anyio
async def test_an_alert_the_sink_failed_to_take_is_delivered_by_a_later_sweep_exactly_once(
    engine: Engine, tmp_path: Path, redis_prefix: str
) -> None:
    flaky, other = Flaky(failures=4), Recording()
    replicas, _ = await past_both_lines(engine, tmp_path, redis_prefix, [flaky])
    sweeping = replicas[0]
    assert [a["delivered_at"] for a in sweeping.alerts.list()] == [None, None]  # both failed
    assert await sweeping.alerts.redeliver(older_than=3600) == 0  # too young to sweep yet
    assert await sweeping.alerts.redeliver(older_than=0) == 0  # the sink is still down
    assert flaky.failures == 0 and not flaky.delivered
    assert [a["delivered_at"] for a in sweeping.alerts.list()] == [None, None]  # claims given back

    # Two replicas sweep at once: each alert is claimed, and delivered, by one of them.
    second = Governance(
        CONFIGURED.governance,
        CONFIGURED.deployments,
        engine,
        sweeping.outbox,
        RedisCounters(REDIS_URL, redis_prefix, 2.0),
        alert_sink=other,
    )
    swept = await asyncio.gather(
        sweeping.alerts.redeliver(older_than=0), second.alerts.redeliver(older_than=0)
    )
    assert sum(swept) == 2
    assert sorted(a.kind for a in flaky.delivered + other.delivered) == ["hard", "soft"]
    assert all(a["delivered_at"] for a in sweeping.alerts.list())
    assert await sweeping.alerts.redeliver(older_than=0) == 0  # nothing is delivered twice
    await second.counters.close()
    for gov in replicas:
        await gov.close()


@pytest.mark.redis
@pytest.mark.anyio
async def test_two_replicas_deliver_each_alert_once_and_a_failed_delivery_stays_listed(
    engine: Engine, tmp_path: Path, redis_prefix: str
) -> None:
    sinks = [Recording(), Failing()]
    replicas, budget_id = await past_both_lines(engine, tmp_path, redis_prefix, list(sinks))
    listed = replicas[0].alerts.list()
    assert sorted(a["kind"] for a in listed) == ["hard", "soft"]
    assert {a["budget_id"] for a in listed} == {budget_id}
    delivered = {(a.kind, a.budget_id) for a in sinks[0].delivered}
    # Each alert was delivered by whichever replica recorded it first, and only by it.
    for alert in listed:
        if alert["delivered_at"] is not None:
            assert (alert["kind"], budget_id) in delivered
        else:
            assert (alert["kind"], budget_id) not in delivered  # the failing replica's
    assert len(sinks[0].delivered) == sum(a["delivered_at"] is not None for a in listed)
    for gov in replicas:
        await gov.close()


@pytest.mark.redis
@pytest.mark.anyio
async def test_each_alert_is_queued_once_for_every_sink_as_a_budget_alert_event(
    engine: Engine, tmp_path: Path, redis_prefix: str
) -> None:
    """The gateway's alert sink (serve.build_services): the two replicas' alerts reach every
    configured sink's queue (the webhook's, the bucket's) once each, in the documented envelope."""
    queue = SinkQueue(engine)
    queue.register(["hook", "bucket"])
    configured = [
        QueueSink(WebhookSink(type="webhook", name=name, url=URL, secret="env:S"), queue)
        for name in ("hook", "bucket")
    ]
    events = [AlertEvents(), AlertEvents()]
    for each in events:
        # Built, never started: the queue is the proof.
        each.sinks = Sinks(configured, queue, tmp_path)
    replicas, budget_id = await past_both_lines(engine, tmp_path, redis_prefix, list(events))
    for sink in ("hook", "bucket"):
        alerts = [e for e in queue.claim(sink, 1000, 30.0) if e.type == "budget_alert"]
        envelopes = [e.envelope() for e in alerts]
        assert sorted(e["data"]["kind"] for e in envelopes) == ["hard", "soft"], envelopes
        assert {e["data"]["budget_id"] for e in envelopes} == {budget_id}
        assert len({e["id"] for e in envelopes}) == 2
    for gov in replicas:
        await gov.close()


@pytest.fixture
def pair(
    upstream: FakeUpstream,
    tmp_path: Path,
    postgres_database: Callable[[], str],
    redis_prefix: str,
) -> Iterator[list[GatewayProcess]]:
    text = gateways.config(
        upstream,
        storage_url=postgres_database(),
        redis={"url": REDIS_URL, "prefix": redis_prefix},
    )
    with gateways.pair(tmp_path, text) as replicas:
        yield replicas


@pytest.mark.postgres
@pytest.mark.redis
def test_a_budget_alerts_once_per_period_across_two_replica_processes(
    pair: list[GatewayProcess],
) -> None:
    first, second = pair
    team = first.admin("POST", "/admin/teams", json={"name": "alerts"}).json()
    made = first.admin(
        "POST",
        "/admin/budgets",
        json={
            "scope": "team",
            "scope_id": team["id"],
            "period": "daily",
            "max_usd": "0.2",
            "soft_usd": "0.1",
        },
    )
    assert made.status_code == 201, made.text
    key = first.create_key([gateways.MODEL], team_id=team["id"])["key"]
    time.sleep(1)  # the other replica's snapshot holds the budget (refresh_seconds 0.5)
    statuses = gateways.hammer(pair, key, 30)
    assert statuses.count(402) + statuses.count(429) > 0 and statuses.count(200) > 0

    def alerts() -> list[dict[str, object]]:
        body: list[dict[str, object]] = first.admin("GET", "/admin/alerts").json()["data"]
        return body

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
        len(alerts()) < 2 or not all(a["delivered_at"] for a in alerts())
    ):
        time.sleep(0.1)
    listed = alerts()
    assert sorted(str(a["kind"]) for a in listed) == ["hard", "soft"]
    assert all(a["delivered_at"] for a in listed)
    assert {a["threshold_usd"] for a in listed} == {"0.100000000", "0.200000000"}
    logs = first.stderr() + second.stderr()
    assert logs.count("budget soft threshold reached") == 1
    assert logs.count("budget hard limit reached") == 1
    assert second.admin("GET", "/admin/alerts").json()["data"] == listed
