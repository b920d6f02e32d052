"""Strategies: the order a model group's deployments are tried in, one per ``router.groups.<m>.
strategy``. Each is a pure function of what routing measured about the group's deployments
(``Stats``) and, for some, of what the operator configured (weights, prices, limits); none does
I/O, so each is cheap enough for every request (bench/routing.py measures them).

    round_robin   the next deployment in turn, then the rest in turn (the default)
    weighted      one drawn at random in proportion to ``weight``, then the rest in turn
    least_busy    the fewest requests in flight first
    latency       the lowest moving average of latency first (time to first byte for streams,
                  total otherwise); with probability ``exploration`` another one goes first, so
                  a deployment that was slow is measured again and wins back its traffic
    lowest_cost   the cheapest by the price table (1k tokens in and 1k out) first
    usage         the most headroom under its own RPM and TPM limits in this minute first
                  (counted by this replica; a deployment without limits has all the headroom)

Ties keep the round-robin order, so equal deployments still share the load.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.config.routing import Strategy as StrategyName
from gateway.routing.stats import Stats


class Choosable(Protocol):
    @property
    def stats(self) -> Stats: ...


class Order(Protocol):
    """Puts a group (already rotated into round-robin order) in the order to try it."""

    def __call__(self, rotated: Sequence[Choosable], stream: bool, minute: int) -> list[int]: ...


def round_robin(rotated: Sequence[Choosable], stream: bool, minute: int) -> list[int]:
    return list(range(len(rotated)))


@dataclass
class Weighted:
    rng: random.Random

    def __call__(self, rotated: Sequence[Choosable], stream: bool, minute: int) -> list[int]:
        bounds = list(itertools.accumulate(r.stats.weight for r in rotated))
        first = bisect.bisect_right(bounds, self.rng.random() * bounds[-1])
        first = min(first, len(rotated) - 1)
        return [first, *(i for i in range(len(rotated)) if i != first)]


def least_busy(rotated: Sequence[Choosable], stream: bool, minute: int) -> list[int]:
    return sorted(range(len(rotated)), key=lambda i: rotated[i].stats.in_flight)


@dataclass
class Latency:
    exploration: float
    rng: random.Random

    def __call__(self, rotated: Sequence[Choosable], stream: bool, minute: int) -> list[int]:
        def measured(i: int) -> float:
            s = rotated[i].stats
            value = s.ttfb if stream else s.total
            return -1.0 if value is None else value  # never measured: try it first

        order = sorted(range(len(rotated)), key=measured)
        if len(order) > 1 and self.rng.random() < self.exploration:
            picked = order.pop(self.rng.randrange(1, len(order)))
            order.insert(0, picked)
        return order


def lowest_cost(rotated: Sequence[Choosable], stream: bool, minute: int) -> list[int]:
    return sorted(range(len(rotated)), key=lambda i: rotated[i].stats.cost)


def usage(rotated: Sequence[Choosable], stream: bool, minute: int) -> list[int]:
    return sorted(range(len(rotated)), key=lambda i: -rotated[i].stats.headroom(minute))


def strategy(name: StrategyName, exploration: float, rng: random.Random | None = None) -> Order:
    """The strategy called ``name`` (``router.groups.<m>.strategy``)."""
    rng = rng or random.Random()  # noqa: S311 (spreading load, not a secret)
    made: dict[StrategyName, Callable[[], Order]] = {
        "round_robin": lambda: round_robin,
        "weighted": lambda: Weighted(rng),
        "least_busy": lambda: least_busy,
        "latency": lambda: Latency(exploration, rng),
        "lowest_cost": lambda: lowest_cost,
        "usage": lambda: usage,
    }
    return made[name]()
