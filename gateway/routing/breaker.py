"""The circuit breaker of each deployment: closed, open, half-open.

A deployment whose retryable failures reach ``router.breaker.failures`` within
``window_seconds`` is opened for ``cooldown_seconds`` (or for the upstream's own ``Retry-After``
when it sent one). While it is open, routing puts it behind every deployment that is not (it is
still tried when nothing else is left: an open breaker never turns a request away on its own).
Once the cooldown is over the breaker is half-open: the next request that picks the deployment is
its probe, and while that probe is in flight other requests treat the deployment as open. The
probe's success closes the breaker; its failure opens it again for another cooldown.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from gateway.config.governance import Redis as RedisSettings
from gateway.config.routing import Breaker as BreakerSettings
from gateway.metrics import METRICS

State = Literal["closed", "open", "half_open"]

BREAKER_STATE = METRICS.gauge(
    "sealgate_breaker_open", "1 while a deployment's breaker is open or half-open, else 0"
)
BREAKER_OPENED = METRICS.counter(
    "sealgate_breaker_opened_total", "times a deployment's breaker opened"
)


@dataclass(slots=True)
class _Breaker:
    failures: deque[float] = field(default_factory=deque)
    open_until: float = 0.0  # 0 when closed
    probing: bool = False


class Breakers:
    def __init__(
        self, settings: BreakerSettings, cooldown: float, clock: Callable[[], float]
    ) -> None:
        self._clock = clock
        self._by_name: dict[str, _Breaker] = {}
        self.configure(settings, cooldown)

    def configure(self, settings: BreakerSettings, cooldown: float) -> None:
        """New settings (a reload); the state of every breaker is kept."""
        self._threshold = settings.failures
        self._window = settings.window_seconds
        self._cooldown = cooldown

    def track(self, names: list[str]) -> None:
        """The deployments routing may ask about (a shared store keeps them in step)."""
        for name in names:
            self._of(name)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _of(self, name: str) -> _Breaker:
        breaker = self._by_name.get(name)
        if breaker is None:
            breaker = self._by_name[name] = _Breaker()
        return breaker

    def state(self, name: str) -> State:
        breaker = self._by_name.get(name)
        if breaker is None or not breaker.open_until:
            return "closed"
        return "open" if self._clock() < breaker.open_until else "half_open"

    def available(self, name: str) -> bool:
        """Whether a request may pick the deployment ahead of the others: closed, or half-open
        with no probe in flight."""
        breaker = self._by_name.get(name)
        if breaker is None or not breaker.open_until:
            return True
        return not breaker.probing and self._clock() >= breaker.open_until

    async def attempt(self, name: str) -> bool:
        """A request is about to call the deployment: if the breaker is half-open, it is the
        probe. False when another request (of another replica) already is: the caller tries
        something else first."""
        breaker = self._by_name.get(name)
        if breaker is not None and breaker.open_until and self._clock() >= breaker.open_until:
            breaker.probing = True
        return True

    def release(self, name: str) -> None:
        """The call that was the probe ended without a verdict on the deployment (cancelled,
        or the request itself refused): the next request probes instead. No-op otherwise."""
        breaker = self._by_name.get(name)
        if breaker is not None and breaker.probing:
            breaker.probing = False
            self._released(name)

    def _released(self, name: str) -> None:
        return None

    def succeeded(self, name: str) -> None:
        breaker = self._by_name.get(name)
        if breaker is None:
            return
        if breaker.open_until:
            BREAKER_STATE[(("deployment", name),)] = 0
        breaker.failures.clear()
        breaker.open_until = 0.0
        breaker.probing = False

    def failed(self, name: str, hold: float | None = None) -> None:
        """A retryable failure; ``hold`` is how long the upstream asked to be left alone."""
        self._count_failure(name, hold)

    def _count_failure(self, name: str, hold: float | None) -> bool:
        """Count the failure; True when it opened the breaker."""
        breaker = self._of(name)
        now = self._clock()
        breaker.failures.append(now)
        while breaker.failures and breaker.failures[0] <= now - self._window:
            breaker.failures.popleft()
        if breaker.probing or len(breaker.failures) >= self._threshold:
            breaker.open_until = now + self._hold(hold)
            breaker.probing = False
            breaker.failures.clear()
            self._opened(name)
            return True
        return False

    def _opened(self, name: str) -> None:
        BREAKER_STATE[(("deployment", name),)] = 1
        BREAKER_OPENED[(("deployment", name),)] += 1

    def _hold(self, hold: float | None) -> float:
        return self._cooldown if hold is None else hold


def build_breakers(
    settings: BreakerSettings, cooldown: float, redis: RedisSettings | None
) -> Breakers:
    """The process's breakers: shared through Redis when governance has a Redis, else local
    (redis-py is imported only then: issue 23, an idle gateway on embedded defaults)."""
    if redis is None:
        return Breakers(settings, cooldown, time.monotonic)
    from gateway.cache.redis_store import client_of
    from gateway.routing.shared_breaker import SharedBreakers

    return SharedBreakers(settings, cooldown, client_of(redis), redis.prefix)
