"""Counters: all-or-nothing reservation, seeds, settle deltas; in this process and in Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.governance.counters import Charge, Counters, CountersUnavailable, MemoryCounters
from gateway.governance.redis_counters import FallbackCounters, RedisCounters
from tests.governance.conftest import REDIS_URL, RedisServer

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def counters(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[Counters]:
    made: Counters
    if request.param == "memory":
        made = MemoryCounters()
    else:
        made = RedisCounters(REDIS_URL, redis_prefix, 2.0)
    yield made
    await made.close()


async def settled(counters: Counters) -> None:
    if isinstance(counters, RedisCounters):
        await counters.drain()


async def test_a_reservation_that_does_not_fit_adds_to_no_counter(counters: Counters) -> None:
    first = await counters.reserve([Charge("a", 5, 10, 60), Charge("b", 5, 10, 60)])
    assert first.ok and first.values == (5, 5)
    refused = await counters.reserve([Charge("a", 3, 10, 60), Charge("b", 6, 10, 60)])
    assert refused.refused == 1 and refused.values == (5, 5)
    after = await counters.reserve([Charge("a", 5, 10, 60), Charge("b", 5, 10, 60)])
    assert after.values == (10, 10)  # the refused request took nothing


async def test_a_new_counter_starts_from_its_seed(counters: Counters) -> None:
    outcome = await counters.reserve([Charge("budget", 10, 100, 60, seed=85)])
    assert outcome.values == (95,)
    outcome = await counters.reserve([Charge("budget", 10, 100, 60, seed=0)])
    assert outcome.refused == 0  # the seed applies only when the counter is created


async def test_settle_moves_a_counter_by_actual_minus_reserved(counters: Counters) -> None:
    await counters.reserve([Charge("t", 100, 100, 60)])
    counters.adjust([("t", -70)])
    await settled(counters)
    assert (await counters.reserve([Charge("t", 70, 100, 60)])).ok
    assert not (await counters.reserve([Charge("t", 1, 100, 60)])).ok


@pytest.mark.redis
async def test_many_concurrent_reservations_never_overshoot_a_redis_limit(
    redis_prefix: str,
) -> None:
    # Two clients (two "replicas") against one limit of 100 tokens, 60 requests of 7 each.
    replicas = [RedisCounters(REDIS_URL, redis_prefix, 2.0) for _ in range(2)]
    outcomes = await asyncio.gather(
        *(replicas[i % 2].reserve([Charge("tpm", 7, 100, 60)]) for i in range(60))
    )
    accepted = sum(1 for o in outcomes if o.ok)
    assert accepted == 100 // 7
    assert max(max(o.values) for o in outcomes if o.ok) <= 100
    for replica in replicas:
        await replica.close()


def test_memory_counters_expire_with_their_window() -> None:
    clock = Clock()
    counters = MemoryCounters(clock)
    assert counters.reserve_now([Charge("r", 1, 1, 60)]).ok
    assert not counters.reserve_now([Charge("r", 1, 1, 60)]).ok
    clock.now += 61
    assert counters.reserve_now([Charge("r", 1, 1, 60)]).ok


@pytest.mark.redis
async def test_an_unreachable_redis_is_reported_at_once_not_waited_on(
    redis_server: RedisServer,
) -> None:
    counters = RedisCounters(redis_server.url, "x", 0.5)
    assert (await counters.reserve([Charge("a", 1, 5, 60)])).ok
    redis_server.stop()
    with pytest.raises(CountersUnavailable):
        await counters.reserve([Charge("a", 1, 5, 60)])
    with pytest.raises(CountersUnavailable):  # marked down: no new connect attempt
        await counters.reserve([Charge("a", 1, 5, 60)])
    await counters.close()


@pytest.mark.redis
async def test_fallback_counters_use_local_counts_while_redis_is_down(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    counters = FallbackCounters(RedisCounters(redis_server.url, "x", 0.5), MemoryCounters())
    redis_server.stop()
    outcomes = [await counters.reserve([Charge("a", 1, 2, 60)]) for _ in range(3)]
    assert [o.ok for o in outcomes] == [True, True, False]
    assert all(o.local for o in outcomes)
    assert any(r.levelname == "ERROR" and "redis down" in r.message for r in caplog.records)
    await counters.close()
