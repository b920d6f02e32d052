"""Faults, with real servers the test can take away: a redis-server of the test's own that it
kills, and a cuttable proxy in front of the shared PostgreSQL server (which must not be stopped)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.governance import gateways
from tests.governance.conftest import RedisServer, via_proxy
from tests.governance.tcp_proxy import TcpProxy
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess


@pytest.mark.redis
def test_redis_down_fails_closed_for_limited_keys_by_default(
    upstream: FakeUpstream, tmp_path: Path, redis_server: RedisServer
) -> None:
    gateway = gateways.start(
        tmp_path, gateways.config(upstream, redis={"url": redis_server.url, "prefix": "f1"})
    )
    try:
        limited = gateway.create_key([gateways.MODEL], rpm_limit=1000)["key"]
        free = gateway.create_key([gateways.MODEL])["key"]
        assert gateways.chat(gateway, limited).status_code == 200
        redis_server.stop()
        refused = gateways.chat(gateway, limited)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "limits_unavailable"
        assert refused.headers["retry-after"] == "1"
        # A key with no limit or budget needs no counter, so it is not refused.
        assert gateways.chat(gateway, free).status_code == 200
    finally:
        gateway.stop()


@pytest.mark.redis
def test_redis_down_with_local_fallback_keeps_limiting_per_replica_and_says_so_loudly(
    upstream: FakeUpstream, tmp_path: Path, redis_server: RedisServer
) -> None:
    redis = {"url": redis_server.url, "prefix": "f2", "on_down": "local"}
    gateway = gateways.start(tmp_path, gateways.config(upstream, redis=redis))
    try:
        gateways.wait_for_window(10)
        key = gateway.create_key([gateways.MODEL], rpm_limit=3)["key"]
        redis_server.stop()
        statuses = [gateways.chat(gateway, key).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        assert "redis down: limits and budgets now enforced per replica" in gateway.stderr()
    finally:
        gateway.stop()


@pytest.mark.postgres
def test_postgres_down_mid_traffic_keeps_known_keys_working_and_loses_no_spend(
    upstream: FakeUpstream,
    tmp_path: Path,
    postgres_database: Callable[[], str],
    postgres_proxy: TcpProxy,
) -> None:
    url = via_proxy(postgres_database(), postgres_proxy)
    text = gateways.config(upstream, storage_url=url, auth_cache_seconds=0.2)
    gateway = gateways.start(tmp_path, text)
    try:
        team = gateway.admin("POST", "/admin/teams", json={"name": "ops"}).json()
        key = gateway.create_key([gateways.MODEL], team_id=team["id"], rpm_limit=1000)["key"]
        gateway.admin(
            "POST",
            "/admin/budgets",
            json={"scope": "team", "scope_id": team["id"], "period": "daily", "max_usd": "100"},
        )
        assert gateways.hammer([gateway], key, 20, workers=4) == [200] * 20
        postgres_proxy.cut()
        time.sleep(0.5)  # past the 0.2 s auth cache: lookups now fail and fall back to it
        assert gateways.hammer([gateway], key, 30, workers=4) == [200] * 30
        unknown = gateways.chat(gateway, "sk-sg-0123456789abcdef-" + "x" * 43)
        assert unknown.status_code >= 400  # a key never seen cannot be checked: refused
        assert gateway.admin("GET", "/admin/reports/spend").status_code >= 500
        assert "key store unreachable; using the cached key record" in gateway.stderr()
    finally:
        gateway.stop()  # a restart while the database is still down
    assert (gateway.data_dir / "spend-outbox.jsonl").stat().st_size > 0
    assert "spend records kept in the outbox: database unavailable" in gateway.stderr()
    postgres_proxy.restore()
    again = GatewayProcess(tmp_path / "again", text, admin_key=gateway.admin_key)
    again.data_dir = gateway.data_dir  # the same replica, restarted
    again.start()
    try:
        totals = gateways.wait_for_requests(again, 50)["totals"]
        assert totals["requests"] == 50
        assert totals["prompt_tokens"] + totals["completion_tokens"] == 50 * gateways.USAGE_TOKENS
        assert totals["cost_nanos"] == 50 * gateways.COST_NANOS
    finally:
        again.stop()
