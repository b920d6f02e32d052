"""Shared counters for rate limits and budget running totals, reserved all-or-nothing.

A request charges several counters at once (its key's requests and tokens this minute, its
team's, its budgets' running totals). ``reserve`` checks every one against its limit and, only if
all have room, adds to all of them, as one atomic step: in this process because nothing awaits
between the check and the add, in Redis because it is one Lua script. So concurrent requests
cannot overshoot a limit. ``adjust`` later moves a counter by the difference between what was
reserved and what was used (or gives a reservation back).

A counter that does not exist yet starts from its charge's ``seed`` (a budget's spend so far this
period, read from the database) and lives for ``ttl`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol


class Charge(NamedTuple):
    key: str
    amount: int
    limit: int
    ttl: int  # seconds the counter lives after it is created
    seed: int = 0


class Outcome(NamedTuple):
    """``refused`` is the index of the first charge that did not fit, or None if all were
    added. ``values`` are the counters after the reservation (or as found, when refused)."""

    refused: int | None
    values: tuple[int, ...]
    local: bool = False  # made in the local fallback while the shared store was down

    @property
    def ok(self) -> bool:
        return self.refused is None


class CountersUnavailable(Exception):
    """The shared counter store could not be reached."""


class Counters(Protocol):
    async def reserve(self, charges: Sequence[Charge]) -> Outcome: ...

    def adjust(self, deltas: Sequence[tuple[str, int]], local: bool = False) -> None:
        """Add each delta to its counter if the counter still exists. Never blocks the caller.
        ``local`` says the reservation was made in the local fallback (see FallbackCounters)."""

    async def health(self) -> dict[str, object]:
        """The readiness check: ``ok``, ``backend`` and, with a fallback, ``degraded``."""

    async def close(self) -> None: ...


SWEEP_EVERY = 4096


class MemoryCounters:
    """Counters in this process: exact for one replica, not shared between replicas."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._values: dict[str, list[float]] = {}  # key -> [value, expires_at]
        self._ops = 0

    def _live(self, key: str, now: float) -> list[float] | None:
        entry = self._values.get(key)
        if entry is not None and entry[1] <= now:
            del self._values[key]
            return None
        return entry

    def reserve_now(self, charges: Sequence[Charge]) -> Outcome:
        now = self._clock()
        self._ops += 1
        if self._ops % SWEEP_EVERY == 0:
            self._sweep(now)
        entries = [self._live(c.key, now) for c in charges]
        current = [
            int(e[0]) if e is not None else c.seed for c, e in zip(charges, entries, strict=True)
        ]
        for index, charge in enumerate(charges):
            if current[index] + charge.amount > charge.limit:
                return Outcome(index, tuple(current))
        after = []
        for charge, entry, value in zip(charges, entries, current, strict=True):
            if entry is None:
                entry = self._values[charge.key] = [float(value), now + charge.ttl]
            entry[0] = value + charge.amount
            after.append(value + charge.amount)
        return Outcome(None, tuple(after))

    async def reserve(self, charges: Sequence[Charge]) -> Outcome:
        return self.reserve_now(charges)

    def adjust(self, deltas: Sequence[tuple[str, int]], local: bool = False) -> None:
        now = self._clock()
        for key, delta in deltas:
            entry = self._live(key, now)
            if entry is not None and delta:
                entry[0] += delta

    def value(self, key: str) -> int | None:
        entry = self._live(key, self._clock())
        return int(entry[0]) if entry is not None else None

    async def health(self) -> dict[str, object]:
        return {"ok": True, "backend": "memory"}

    def _sweep(self, now: float) -> None:
        for key in [k for k, v in self._values.items() if v[1] <= now]:
            del self._values[key]

    async def close(self) -> None:
        return None
