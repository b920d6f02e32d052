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

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

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
        self._threshold = settings.failures
        self._window = settings.window_seconds
        self._cooldown = cooldown
        self._clock = clock
        self._by_name: dict[str, _Breaker] = {}

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

    def attempt(self, name: str) -> None:
        """A request is about to call the deployment: if the breaker is half-open, it is the
        probe."""
        breaker = self._by_name.get(name)
        if breaker is not None and breaker.open_until and self._clock() >= breaker.open_until:
            breaker.probing = True

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
        breaker = self._of(name)
        now = self._clock()
        breaker.failures.append(now)
        while breaker.failures and breaker.failures[0] <= now - self._window:
            breaker.failures.popleft()
        if breaker.probing or len(breaker.failures) >= self._threshold:
            breaker.open_until = now + (self._cooldown if hold is None else hold)
            breaker.probing = False
            breaker.failures.clear()
            BREAKER_STATE[(("deployment", name),)] = 1
            BREAKER_OPENED[(("deployment", name),)] += 1
