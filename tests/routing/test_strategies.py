"""The strategies against real upstreams on loopback: the weighted split over many calls, and
latency routing moving traffic off a slowed deployment and back once it recovers; and each
strategy's order over measured stats, as pure functions."""

from __future__ import annotations

import random

import pytest

from gateway.routing.stats import Stats
from gateway.routing.strategies import (
    Latency,
    Weighted,
    least_busy,
    lowest_cost,
    usage,
)
from tests.routing.conftest import BODY, Routing, config, deployment, served
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.anyio


async def test_weighted_routing_splits_calls_by_weight_within_a_stated_tolerance(
    upstreams: dict[str, FakeUpstream], routing: Routing
) -> None:
    cfg = config(
        [
            deployment("m", upstreams["a"], "a", weight=1),
            deployment("m", upstreams["b"], "b", weight=3),
        ],
        {"groups": {"m": {"strategy": "weighted"}}},
    )
    r = routing.router(cfg)
    calls = 400
    for _ in range(calls):
        await r.chat("m", BODY)
    counts = served(upstreams)
    # b should take 3/4 of the calls: 300, with a standard deviation of about 8.7 over 400
    # calls; the tolerance is +-40 (more than four standard deviations).
    assert counts["a"] + counts["b"] == calls
    assert abs(counts["b"] - 300) <= 40, counts


async def test_latency_routing_moves_off_a_slowed_deployment_and_back_once_it_recovers(
    upstreams: dict[str, FakeUpstream], routing: Routing
) -> None:
    a, b = upstreams["a"], upstreams["b"]
    cfg = config(
        [deployment("m", a, "a"), deployment("m", b, "b")],
        {"groups": {"m": {"strategy": "latency", "exploration": 0.1}}},
    )
    # A seeded generator fixes which calls explore, so the counts below depend only on the
    # latencies measured; the slow side's 250 ms is far above what a loopback answer takes on a
    # loaded machine, so scheduling noise cannot reorder the two.
    r = routing.router(cfg, rng=random.Random(20261201))
    slow = 0.25
    a.default.delay = slow
    for _ in range(40):
        await r.chat("m", BODY)
    slowed = served(upstreams)
    # a is tried when never measured, then only when exploration picks it (about 1 in 10)
    assert slowed["a"] <= 10, slowed

    a.default.delay = 0.0  # a recovers; its exploration samples bring its average down
    b.default.delay = slow  # and b slows, so the traffic has somewhere to go
    for _ in range(20):
        await r.chat("m", BODY)
    settling = served(upstreams)
    for _ in range(30):
        await r.chat("m", BODY)
    after = served(upstreams)
    # once the averages have crossed, a takes everything but b's exploration samples
    assert after["a"] - settling["a"] >= 24, (slowed, settling, after)


def stats(**fields: float) -> Stats:
    s = Stats()
    for name, value in fields.items():
        setattr(s, name, value)
    return s


class Item:
    def __init__(self, s: Stats) -> None:
        self.stats = s


def test_weighted_picks_the_first_in_proportion_to_weight_and_keeps_the_rest_in_turn() -> None:
    group = [Item(stats(weight=1)), Item(stats(weight=0.000001)), Item(stats(weight=1))]
    pick = Weighted(random.Random(7))
    firsts = [pick(group, False, 0)[0] for _ in range(1000)]
    assert firsts.count(1) <= 2  # a near-zero weight is almost never first
    assert 400 <= firsts.count(0) <= 600
    assert sorted(pick(group, False, 0)) == [0, 1, 2]  # every deployment stays in the order


def test_latency_orders_by_total_for_answers_and_by_first_byte_for_streams() -> None:
    group = [Item(stats(ttfb=0.5, total=0.1)), Item(stats(ttfb=0.1, total=0.9))]
    never = Latency(exploration=0.0, rng=random.Random(1))
    assert never(group, False, 0) == [0, 1]
    assert never(group, True, 0) == [1, 0]


def test_latency_tries_a_deployment_never_measured_first() -> None:
    group = [Item(stats(total=0.1)), Item(Stats())]
    assert Latency(0.0, random.Random(1))(group, False, 0) == [1, 0]


def test_latency_exploration_puts_another_deployment_first_at_about_its_rate() -> None:
    group = [Item(stats(total=0.1)), Item(stats(total=5.0))]
    explore = Latency(exploration=0.2, rng=random.Random(3))
    explored = sum(explore(group, False, 0)[0] == 1 for _ in range(2000))
    assert 300 <= explored <= 500  # 2000 * 0.2 = 400


def test_least_busy_puts_the_fewest_requests_in_flight_first() -> None:
    group = [Item(stats(in_flight=3)), Item(stats(in_flight=0)), Item(stats(in_flight=1))]
    assert least_busy(group, False, 0) == [1, 2, 0]


def test_lowest_cost_puts_the_cheapest_first_and_keeps_ties_in_turn() -> None:
    group = [Item(stats(cost=20)), Item(stats(cost=5)), Item(stats(cost=20))]
    assert lowest_cost(group, False, 0) == [1, 0, 2]


def test_usage_puts_the_most_headroom_first_and_forgets_last_minutes_counts() -> None:
    full = Stats(rpm_limit=10)
    full.count(minute=7, requests=9)
    half = Stats(tpm_limit=1000)
    half.count(minute=7, tokens=500)
    group = [Item(full), Item(half), Item(Stats())]
    assert usage(group, False, 7) == [2, 1, 0]
    assert usage(group, False, 8) == [0, 1, 2]  # a new minute: every one has all its room
