"""/health/ready shows the governance counters and the spend outbox: Redis down makes a
fail-closed replica unready and a falling-back one degraded; a database outage shows as the
outbox's backlog, which drains when the database is back."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.governance.counters import MemoryCounters
from gateway.governance.redis_counters import FallbackCounters, RedisCounters
from tests.governance import gateways
from tests.governance.conftest import RedisServer, via_proxy
from tests.governance.tcp_proxy import TcpProxy
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess


def ready(gateway: GatewayProcess) -> tuple[int, dict[str, Any]]:
    response = httpx.get(gateway.url + "/health/ready", timeout=10)
    body: dict[str, Any] = response.json()
    return response.status_code, body


def ready_when(
    gateway: GatewayProcess, condition: Callable[[dict[str, Any]], bool], timeout: float = 20
) -> tuple[int, dict[str, Any]]:
    """The readiness answer once ``condition`` holds for its checks; the last one seen if it
    never does."""
    deadline = time.monotonic() + timeout
    status, body = ready(gateway)
    while not condition(body["checks"]) and time.monotonic() < deadline:
        time.sleep(0.1)
        status, body = ready(gateway)
    return status, body


def test_a_single_process_shows_memory_counters_and_an_empty_outbox(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    gateway = gateways.start(tmp_path, gateways.config(upstream))
    try:
        status, body = ready(gateway)
        assert status == 200, body
        assert body["checks"]["counters"] == {"ok": True, "backend": "memory"}
        assert body["checks"]["spend_outbox"] == {"ok": True, "queued": 0, "undelivered_bytes": 0}
    finally:
        gateway.stop()


@pytest.mark.redis
@pytest.mark.parametrize(
    ("on_down", "status_down", "check_up", "check_down"),
    [
        (
            "fail_closed",
            503,
            {"ok": True, "backend": "redis"},
            {"ok": False, "backend": "redis"},
        ),
        (
            "local",
            200,
            {"ok": True, "backend": "redis", "degraded": False},
            {"ok": True, "backend": "redis", "degraded": True},
        ),
    ],
)
def test_redis_down_is_unready_when_failing_closed_and_degraded_with_local_fallback(
    upstream: FakeUpstream,
    tmp_path: Path,
    redis_server: RedisServer,
    on_down: str,
    status_down: int,
    check_up: dict[str, Any],
    check_down: dict[str, Any],
) -> None:
    redis = {"url": redis_server.url, "prefix": "ready", "on_down": on_down}
    gateway = gateways.start(tmp_path, gateways.config(upstream, redis=redis))
    try:
        status, body = ready(gateway)
        assert (status, body["checks"]["counters"]) == (200, check_up), body
        redis_server.stop()
        status, body = ready(gateway)
        assert (status, body["checks"]["counters"]) == (status_down, check_down), body
        assert body["checks"]["database"] == {"ok": True}
        redis_server.start()  # the same port: readiness follows the server back
        status, body = ready_when(gateway, lambda checks: checks["counters"] == check_up)
        assert (status, body["checks"]["counters"]) == (200, check_up), body
    finally:
        gateway.stop()


@pytest.mark.redis
@pytest.mark.anyio
@pytest.mark.parametrize("fallback", [False, True])
async def test_a_redis_that_never_answers_does_not_hang_the_readiness_check(
    fallback: bool,
) -> None:
    # A listening socket nobody accepts from: connects succeed, a PING is never answered.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        shared = RedisCounters(url, "x", 30)  # the configured timeout alone would wait 30 s
        counters = FallbackCounters(shared, MemoryCounters()) if fallback else shared
        health = await asyncio.wait_for(counters.health(), 10)
        await counters.close()
    if fallback:
        assert health == {"ok": True, "backend": "redis", "degraded": True}
    else:
        assert health == {"ok": False, "backend": "redis"}


@pytest.mark.postgres
def test_a_database_outage_shows_the_outbox_backlog_until_it_is_delivered(
    upstream: FakeUpstream,
    tmp_path: Path,
    postgres_database: Callable[[], str],
    postgres_proxy: TcpProxy,
) -> None:
    url = via_proxy(postgres_database(), postgres_proxy)
    gateway = gateways.start(tmp_path, gateways.config(upstream, storage_url=url))
    try:
        key = gateway.create_key([gateways.MODEL])["key"]
        assert gateways.chat(gateway, key).status_code == 200
        postgres_proxy.cut()
        assert [gateways.chat(gateway, key).status_code for _ in range(3)] == [200] * 3
        status, body = ready_when(gateway, lambda c: c["spend_outbox"]["undelivered_bytes"] > 0)
        checks = body["checks"]
        assert status == 503
        assert checks["database"]["ok"] is False
        assert checks["spend_outbox"]["ok"] is True
        assert checks["spend_outbox"]["undelivered_bytes"] > 0
        assert key not in str(body)
        postgres_proxy.restore()
        status, body = ready_when(gateway, lambda c: c["spend_outbox"]["undelivered_bytes"] == 0)
        assert status == 200, body
        assert body["checks"]["spend_outbox"] == {"ok": True, "queued": 0, "undelivered_bytes": 0}
    finally:
        gateway.stop()
