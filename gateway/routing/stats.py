"""What routing measures of each deployment on this replica (``Stats``: latency averages,
requests in flight, this minute's requests and tokens, health), and the stream wrapper that
measures a stream until it ends. The strategies (``strategies``) order a group by these."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from gateway.values import Stream, Usage, parsed_chunks

# How much one new latency sample moves the moving average (an EWMA).
EWMA_ALPHA = 0.3


@dataclass(slots=True)
class Stats:
    """What this replica measured of one deployment, updated by the router around each call."""

    weight: float = 1.0
    cost: float = 0.0  # nano-dollars for 1k tokens in and 1k out
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    in_flight: int = 0
    ttfb: float | None = None  # EWMA seconds to the first byte (a stream's status and headers)
    total: float | None = None  # EWMA seconds to the whole answer
    minute: int = -1
    requests: int = 0  # in ``minute``
    tokens: int = 0  # in ``minute``
    healthy: bool = True  # the last health probe's verdict (``routing.health``)

    def observe(self, ttfb: float | None = None, total: float | None = None) -> None:
        if ttfb is not None:
            self.ttfb = ttfb if self.ttfb is None else self.ttfb + EWMA_ALPHA * (ttfb - self.ttfb)
        if total is not None:
            self.total = (
                total if self.total is None else self.total + EWMA_ALPHA * (total - self.total)
            )

    def count(self, minute: int, requests: int = 0, tokens: int = 0) -> None:
        if minute != self.minute:
            self.minute, self.requests, self.tokens = minute, 0, 0
        self.requests += requests
        self.tokens += tokens

    def headroom(self, minute: int) -> float:
        """The smaller of the RPM and TPM shares left in ``minute`` (1.0 without limits)."""
        requests, tokens = (self.requests, self.tokens) if minute == self.minute else (0, 0)
        left = 1.0
        if self.rpm_limit:
            left = min(left, 1 - requests / self.rpm_limit)
        if self.tpm_limit:
            left = min(left, 1 - tokens / self.tpm_limit)
        return left


class TimedStream:
    """A stream passed on as it is, that tells the deployment's stats when it ended: its total
    latency, its tokens, and that it is no longer in flight."""

    def __init__(
        self, inner: Stream, stats: Stats, started: float, clock: Callable[[], float]
    ) -> None:
        self._inner = inner
        self._stats = stats
        self._started = started
        self._clock = clock
        self._open = True

    @property
    def usage(self) -> Usage | None:
        return self._inner.usage

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner.chunks():
            yield chunk
        self._stats.observe(total=time.perf_counter() - self._started)

    def parsed(self) -> AsyncIterator[list[Any]] | None:
        inner = parsed_chunks(self._inner)
        return None if inner is None else self._timed(inner)

    async def _timed(self, inner: AsyncIterator[list[Any]]) -> AsyncIterator[list[Any]]:
        async for batch in inner:
            yield batch
        self._stats.observe(total=time.perf_counter() - self._started)

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if self._open:
                self._open = False
                self._stats.in_flight -= 1
                usage = self._inner.usage
                if usage is not None:
                    self._stats.count(int(self._clock() // 60), tokens=usage.total_tokens)
