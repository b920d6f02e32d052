"""Routing against real upstreams: three fake upstream servers on loopback (each its own aiohttp
server, speaking the OpenAI wire format), each told to fail in a scripted pattern, and a router
built from a config file's text with the real provider adapters and connection pool."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from gateway.config import GatewayConfig, parse_config
from gateway.providers.pool import UpstreamPool
from gateway.providers.registry import PROVIDERS
from gateway.routing.router import Router, routes_for
from gateway.secrets.broker import SecretBroker
from tests.support.fake_upstream import FakeUpstream

NAMES = ("a", "b", "c")


class Clock:
    """The breaker's clock, moved by the test (the router's waits use the event loop's)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="package")
def servers() -> Iterator[dict[str, FakeUpstream]]:
    started = {name: FakeUpstream().start() for name in NAMES}
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture
def upstreams(servers: dict[str, FakeUpstream]) -> Iterator[dict[str, FakeUpstream]]:
    for server in servers.values():
        server.reset()
    yield servers
    for server in servers.values():
        server.reset()


def deployment(model: str, server: FakeUpstream, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "provider": "openai_compatible",
        "id": name,
        "base_url": f"{server.base_url}/v1",
        "allow_private_network": True,
        "timeouts": {"connect": 2, "read": 5, "total": 10},
        **extra,
    }


def config(deployments: list[dict[str, Any]], router: dict[str, Any]) -> GatewayConfig:
    text = json.dumps({"deployments": deployments, "router": router})  # JSON is YAML
    return parse_config(text, "<test>", PROVIDERS)


class Routing:
    """Builds routers over the upstreams, and closes their pools."""

    def __init__(self) -> None:
        self.pools: list[UpstreamPool] = []

    def router(
        self, cfg: GatewayConfig, clock: Clock | None = None, rng: random.Random | None = None
    ) -> Router:
        pool = UpstreamPool()
        self.pools.append(pool)
        broker = SecretBroker({}, ttl=300, stale=0)
        return Router(
            cfg.router, routes_for(cfg.deployments, pool), broker, clock or Clock(), rng=rng
        )


@pytest.fixture
async def routing() -> AsyncIterator[Routing]:
    made = Routing()
    yield made
    for pool in made.pools:
        await pool.close()


BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def served(upstreams: dict[str, FakeUpstream]) -> dict[str, int]:
    return {name: len(server.requests) for name, server in upstreams.items()}
