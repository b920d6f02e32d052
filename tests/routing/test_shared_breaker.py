"""The breaker across two replicas through the real Redis: failures of both count together,
the breaker opens for both, one probe between them when it is half-open, closed for both by the
probe's success. Two routers stand for the two replicas (each with its own breakers and its own
Redis connection), over the same real upstreams."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from gateway.config import GatewayConfig
from gateway.config.routing import Breaker
from gateway.providers.pool import UpstreamPool
from gateway.routing.router import Router, routes_for
from gateway.routing.shared_breaker import SharedBreakers
from gateway.secrets.broker import SecretBroker
from tests.routing.conftest import BODY, config, deployment
from tests.support.fake_upstream import FakeUpstream

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

REDIS_URL = os.environ.get("SEALGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
COOLDOWN = 0.5


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    prefix = "sgtest-" + secrets.token_hex(6)
    yield prefix
    client = aioredis.Redis.from_url(REDIS_URL)
    async for key in client.scan_iter(match="{" + prefix + "}:*"):
        await client.delete(key)
    await client.aclose()


class Replica:
    def __init__(self, cfg: GatewayConfig, prefix: str) -> None:
        self.breakers = SharedBreakers(
            Breaker(failures=2), COOLDOWN, aioredis.Redis.from_url(REDIS_URL), prefix
        )
        self.pool = UpstreamPool()
        broker = SecretBroker({}, ttl=300, stale=0)
        routes = routes_for(cfg.deployments, self.pool)
        self.router = Router(cfg.router, routes, broker, breakers=self.breakers)

    async def served_by(self) -> str:
        _, served = await self.router.chat("m", BODY)
        await asyncio.gather(*self.breakers._tasks)  # what it told Redis has arrived
        return served.name

    async def close(self) -> None:
        await self.breakers.close()
        await self.pool.close()


async def test_two_replicas_share_the_breakers_open_half_open_and_closed_states(
    upstreams: dict[str, FakeUpstream], prefix: str
) -> None:
    a, b = upstreams["a"], upstreams["b"]
    a.default.status = 500
    cfg = config(
        [deployment("m", a, "a"), deployment("m", b, "b")],
        {"retries": 1, "cooldown_seconds": COOLDOWN},
    )
    one, two = Replica(cfg, prefix), Replica(cfg, prefix)
    try:
        # one failure of a on each replica: two in the shared window, so a opens for both
        for count, replica in enumerate((one, two), start=1):
            while len(a.requests) < count:  # round robin reaches a every other call
                assert await replica.served_by() == "b"
        assert two.breakers.state("a") == "open"  # its own failure and one's, counted in Redis
        assert one.breakers.state("a") == "closed"  # one alone has counted one failure ...
        await one.breakers.sync()
        assert one.breakers.state("a") == "open"  # ... until it follows Redis
        for replica in (one, two):
            for _ in range(3):
                assert await replica.served_by() == "b"
        assert len(a.requests) == 2

        await asyncio.sleep(COOLDOWN + 0.2)  # the cooldown ends (Redis expires the key)
        a.default.status = 200
        await one.breakers.sync()
        await two.breakers.sync()
        assert one.breakers.state("a") == two.breakers.state("a") == "half_open"
        assert await one.breakers.attempt("a")  # replica one holds the probe ...
        await two.breakers.sync()
        assert not await two.breakers.attempt("a")  # ... so replica two does not probe
        one.breakers.succeeded("a")  # the probe's success closes a for both
        await asyncio.gather(*one.breakers._tasks)
        await two.breakers.sync()
        assert two.breakers.state("a") == "closed"
        assert {await two.served_by() for _ in range(2)} == {"a", "b"}
    finally:
        await one.close()
        await two.close()
