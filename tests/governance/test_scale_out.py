"""Gateway processes sharing PostgreSQL and Redis, hit at the same time: limits and budgets hold
across all of them, exactly, and the spend totals equal what the upstream reported. Two replicas
are called directly; three sit behind a round-robin proxy on loopback, as replicas sit behind a
Kubernetes Service (deploy/kubernetes/overlays/postgres-redis, docs/deploy.md)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.governance import gateways
from tests.governance.conftest import REDIS_URL
from tests.governance.tcp_proxy import TcpProxy
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


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


@pytest.fixture
def trio(
    upstream: FakeUpstream,
    tmp_path: Path,
    postgres_database: Callable[[], str],
    redis_prefix: str,
) -> Iterator[tuple[TcpProxy, list[GatewayProcess]]]:
    """Three replicas on one PostgreSQL and one Redis, behind a round-robin proxy, started at
    once on the fresh database as a Deployment's pods are: they take turns on the migration."""
    text = gateways.config(
        upstream,
        storage_url=postgres_database(),
        redis={"url": REDIS_URL, "prefix": redis_prefix},
    )
    replicas = [GatewayProcess(tmp_path / name, text).start(wait=False) for name in "abc"]
    try:
        for replica in replicas:
            replica.wait_ready()
    except RuntimeError:
        for replica in replicas:
            replica.stop()
        raise
    first, *others = [("127.0.0.1", replica.port) for replica in replicas]
    proxy = TcpProxy(*first, *others)
    yield proxy, replicas
    proxy.stop()
    for replica in replicas:
        replica.stop()


def upstream_chats(upstream: FakeUpstream) -> int:
    return sum(1 for seen in upstream.requests if seen.path.endswith("/chat/completions"))


def test_a_key_with_an_rpm_of_n_gets_exactly_n_requests_per_window_across_replicas(
    pair: list[GatewayProcess],
) -> None:
    first, _ = pair
    key = first.create_key([gateways.MODEL], rpm_limit=25)["key"]
    gateways.wait_for_window()
    statuses = gateways.hammer(pair, key, 80)
    assert statuses.count(200) == 25
    assert statuses.count(429) == 55


def test_a_team_budget_is_never_exceeded_across_replicas(pair: list[GatewayProcess]) -> None:
    first, second = pair
    team = first.admin("POST", "/admin/teams", json={"name": "research"}).json()
    made = first.admin(
        "POST",
        "/admin/budgets",
        json={"scope": "team", "scope_id": team["id"], "period": "daily", "max_usd": "1"},
    )
    assert made.status_code == 201
    key = first.create_key([gateways.MODEL], team_id=team["id"])["key"]
    time.sleep(1)  # both replicas have reloaded the budget (refresh_seconds 0.5)
    statuses = gateways.hammer(pair, key, 80)
    accepted = statuses.count(200)
    body = gateways.wait_for_requests(second, accepted)
    spent = body["totals"]["cost_nanos"]
    assert spent == accepted * gateways.COST_NANOS
    assert spent <= 1_000_000_000  # never more than the budget
    # ...and not far under it: at most one reservation's worth is left unused.
    assert spent > 1_000_000_000 - gateways.RESERVED_NANOS - gateways.COST_NANOS
    assert statuses.count(429) == 80 - accepted


def test_spend_totals_equal_the_usage_the_upstream_reported_across_replicas(
    pair: list[GatewayProcess],
) -> None:
    first, second = pair
    key = first.create_key([gateways.MODEL])["key"]
    statuses = gateways.hammer(pair, key, 60)
    assert statuses == [200] * 60
    totals = gateways.wait_for_requests(second, 60)["totals"]
    assert totals["requests"] == 60
    assert totals["prompt_tokens"] + totals["completion_tokens"] == 60 * gateways.USAGE_TOKENS
    assert totals["cost_nanos"] == 60 * gateways.COST_NANOS


def test_three_replicas_behind_a_round_robin_proxy_admit_exactly_the_rpm_limit(
    trio: tuple[TcpProxy, list[GatewayProcess]], upstream: FakeUpstream
) -> None:
    proxy, replicas = trio
    key = replicas[0].create_key([gateways.MODEL], rpm_limit=40)["key"]
    gateways.wait_for_window()
    statuses = gateways.hammer_through(f"http://127.0.0.1:{proxy.port}", key, 120)
    assert proxy.connections == [40, 40, 40]  # every replica took its third
    assert statuses.count(200) == 40
    assert statuses.count(429) == 80
    assert upstream_chats(upstream) == 40  # a refused request never reaches the provider


def test_three_replicas_behind_a_round_robin_proxy_never_exceed_a_team_budget(
    trio: tuple[TcpProxy, list[GatewayProcess]], upstream: FakeUpstream
) -> None:
    proxy, replicas = trio
    team = replicas[0].admin("POST", "/admin/teams", json={"name": "research"}).json()
    made = replicas[0].admin(
        "POST",
        "/admin/budgets",
        json={"scope": "team", "scope_id": team["id"], "period": "daily", "max_usd": "1"},
    )
    assert made.status_code == 201
    key = replicas[0].create_key([gateways.MODEL], team_id=team["id"])["key"]
    time.sleep(1)  # every replica has reloaded the budget (refresh_seconds 0.5)
    statuses = gateways.hammer_through(f"http://127.0.0.1:{proxy.port}", key, 90)
    assert proxy.connections == [30, 30, 30]
    accepted = statuses.count(200)
    body = gateways.wait_for_requests(replicas[2], accepted)
    spent = body["totals"]["cost_nanos"]
    assert body["totals"]["requests"] == accepted == upstream_chats(upstream)
    assert spent == accepted * gateways.COST_NANOS
    assert spent <= 1_000_000_000  # never more than the budget
    # ...and not far under it: at most one reservation's worth is left unused.
    assert spent > 1_000_000_000 - gateways.RESERVED_NANOS - gateways.COST_NANOS
    assert statuses.count(429) == 90 - accepted


def test_three_replicas_behind_a_round_robin_proxy_count_spend_exactly(
    trio: tuple[TcpProxy, list[GatewayProcess]], upstream: FakeUpstream
) -> None:
    proxy, replicas = trio
    key = replicas[0].create_key([gateways.MODEL])["key"]
    statuses = gateways.hammer_through(f"http://127.0.0.1:{proxy.port}", key, 90)
    assert statuses == [200] * 90
    assert proxy.connections == [30, 30, 30]
    assert upstream_chats(upstream) == 90
    for replica in replicas:  # each replica reports the same shared totals
        totals = gateways.wait_for_requests(replica, 90)["totals"]
        assert totals["requests"] == 90
        assert totals["prompt_tokens"] + totals["completion_tokens"] == 90 * gateways.USAGE_TOKENS
        assert totals["cost_nanos"] == 90 * gateways.COST_NANOS
