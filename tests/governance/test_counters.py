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


class CallSpy:
    """Records the script calls (the real script still runs in the real Redis): how many
    requests' reservations and how many settle deltas each carried."""

    def __init__(self, counters: RedisCounters) -> None:
        self.requests: list[int] = []  # requests per call
        self.deltas: list[int] = []  # settle deltas per call
        self._real = counters._evaluate
        counters._evaluate = self  # type: ignore[method-assign]

    async def __call__(self, keys: list[str], args: tuple[str, str]) -> bytes:
        numbers = [int(n) for n in args[1].split()]
        at, requests = 0, 0
        while at < len(numbers):  # per request: n, then n groups of 4
            at += 1 + 4 * numbers[at]
            requests += 1
        self.requests.append(requests)
        self.deltas.append(len(args[0].split()))
        return await self._real(keys, args)


async def current(counters: RedisCounters, *keys: str) -> tuple[int, ...]:
    return (await counters.reserve([Charge(k, 0, 10**12, 60) for k in keys])).values


@pytest.mark.redis
async def test_concurrent_reservations_share_a_redis_call_each_all_or_nothing(
    redis_prefix: str,
) -> None:
    counters = RedisCounters(REDIS_URL, redis_prefix, 2.0)
    spy = CallSpy(counters)
    # 40 requests, each 3 of "a" (room for 33) and 5 of "b" (room for 10): b runs out first,
    # and the 30 refused requests must take nothing from a.
    outcomes = await asyncio.gather(
        *(counters.reserve([Charge("a", 3, 100, 60), Charge("b", 5, 50, 60)]) for _ in range(40))
    )
    assert sum(1 for o in outcomes if o.ok) == 10
    assert all(o.refused == 1 for o in outcomes if not o.ok)
    assert await current(counters, "a", "b") == (30, 50)
    assert sum(spy.requests) == 41 and len(spy.requests) < 40  # round trips were shared
    await counters.close()


@pytest.mark.redis
async def test_settle_deltas_ride_with_the_next_reservation_and_apply_before_it(
    redis_prefix: str,
) -> None:
    counters = RedisCounters(REDIS_URL, redis_prefix, 2.0)
    spy = CallSpy(counters)
    assert (await counters.reserve([Charge("t", 100, 100, 60)])).ok
    counters.adjust([("t", -60)])  # used 40 of the 100 reserved
    after = await counters.reserve([Charge("t", 60, 100, 60)])  # fits only after the delta
    assert after.ok and after.values == (100,)
    assert (spy.requests, spy.deltas) == ([1, 1], [0, 1])  # two calls, not three
    await counters.close()


@pytest.mark.redis
async def test_settle_deltas_go_on_their_own_when_no_reservation_comes(
    redis_prefix: str,
) -> None:
    counters = RedisCounters(REDIS_URL, redis_prefix, 2.0)
    spy = CallSpy(counters)
    await counters.reserve([Charge("t", 100, 100, 60)])
    counters.adjust([("t", -30)])
    while len(spy.deltas) < 2:  # the settle timer fires by itself, no drain()
        await asyncio.sleep(0.005)
    assert (spy.requests, spy.deltas) == ([1, 0], [0, 1])
    assert await current(counters, "t") == (70,)
    await counters.close()


@pytest.mark.redis
async def test_reservations_survive_a_script_flush(redis_prefix: str) -> None:
    # Redis restarted or SCRIPT FLUSH: EVALSHA answers NOSCRIPT, the counters send the script.
    counters = RedisCounters(REDIS_URL, redis_prefix, 2.0)
    assert (await counters.reserve([Charge("a", 1, 10, 60)])).ok
    await counters._client.script_flush()
    assert (await counters.reserve([Charge("a", 1, 10, 60)])).values == (2,)
    await counters.close()


@pytest.mark.redis
async def test_a_budget_total_beyond_lua_number_printing_stays_exact(redis_prefix: str) -> None:
    # 1.5e14 nanos (USD 150,000 spent this period) plus a 1-nano request: Lua's default number
    # format would have written 1.5e+14, and the next INCRBY would have failed.
    counters = RedisCounters(REDIS_URL, redis_prefix, 2.0)
    seed = 150_000_000_000_000
    first = await counters.reserve([Charge("usd", 123_456_789, 10**16, 60, seed=seed)])
    assert first.values == (seed + 123_456_789,)
    second = await counters.reserve([Charge("usd", 1, 10**16, 60)])
    assert second.values == (seed + 123_456_790,)
    counters.adjust([("usd", -3)])
    await counters.drain()
    assert await current(counters, "usd") == (seed + 123_456_787,)
    await counters.close()


@pytest.mark.redis
@pytest.mark.parametrize("sent", [False, True], ids=["before-sending", "while-in-flight"])
async def test_a_cancelled_reservation_leaves_no_charge_behind(
    redis_prefix: str, sent: bool
) -> None:
    counters = RedisCounters(REDIS_URL, redis_prefix, 2.0)
    spy = CallSpy(counters)
    task = asyncio.create_task(counters.reserve([Charge("a", 7, 100, 60)]))
    await asyncio.sleep(0)  # the request is queued; the sender has not run yet
    while sent and not spy.requests:  # until the script call with it is on its way
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await counters.drain()
    # In flight: the reservation was made, then given back as a settle delta of -7.
    assert (spy.requests, spy.deltas) == (([1, 0], [0, 1]) if sent else ([], []))
    assert await current(counters, "a") == (0,)
    await counters.close()


@pytest.mark.redis
async def test_counters_reconnect_when_redis_comes_back_and_send_the_script_again(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.governance.redis_counters.DOWN_SECONDS", 0.1)
    counters = RedisCounters(redis_server.url, "x", 0.5)
    assert (await counters.reserve([Charge("a", 1, 5, 60)])).ok
    redis_server.stop()
    with pytest.raises(CountersUnavailable):
        await counters.reserve([Charge("a", 1, 5, 60)])
    redis_server.start()  # same port, empty, and without the script
    await asyncio.sleep(0.15)
    outcome = await counters.reserve([Charge("a", 1, 5, 60)])
    assert outcome.ok and outcome.values == (1,)  # a new server: the count starts again
    await counters.close()
