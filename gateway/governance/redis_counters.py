"""Counters in Redis, shared by every replica: one Lua script checks and adds all of a request's
charges atomically, another applies the settle deltas.

When Redis cannot be reached, ``reserve`` raises CountersUnavailable at once for the next
``DOWN_SECONDS`` instead of waiting on a connect timeout per request; the caller decides whether
that fails closed or falls back to local counters. Settle deltas that cannot be delivered are
dropped with a warning: a reservation that is never settled only over-counts (the safe side),
and budgets are re-seeded from the spend table in the database, which the outbox keeps exact.

All keys of one request go to one script call, so a Redis Cluster needs them in one slot: the
prefix is wrapped in a hash tag (``{sealgate}:...``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.governance.counters import Charge, CountersUnavailable, MemoryCounters, Outcome

log = logging.getLogger("sealgate.limits")

DOWN_SECONDS = 1.0
# The readiness ping gives up after this, whatever redis.timeout_seconds says: probes are
# often given one second.
PING_SECONDS = 0.5
MAX_CONNECTIONS = 64

RESERVE = """
local n = #KEYS
local values = {}
for i = 1, n do
  local current = redis.call('GET', KEYS[i])
  if current then values[i] = tonumber(current) else values[i] = tonumber(ARGV[4 * i]) end
end
for i = 1, n do
  if values[i] + tonumber(ARGV[4 * i - 3]) > tonumber(ARGV[4 * i - 2]) then
    local out = {i}
    for j = 1, n do out[j + 1] = values[j] end
    return out
  end
end
local out = {0}
for i = 1, n do
  local amount = tonumber(ARGV[4 * i - 3])
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('SET', KEYS[i], values[i] + amount, 'EX', tonumber(ARGV[4 * i - 1]))
    out[i + 1] = values[i] + amount
  else
    out[i + 1] = redis.call('INCRBY', KEYS[i], amount)
  end
end
return out
"""

ADJUST = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBY', KEYS[i], ARGV[i])
  end
end
return 0
"""


class RedisCounters:
    def __init__(self, url: str, prefix: str, timeout: float) -> None:
        # A bounded pool that makes callers wait their turn (up to the timeout) rather than
        # open a connection per concurrent request or fail when the pool is busy.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self._client = aioredis.Redis.from_pool(pool)  # closes the pool with the client
        self._prefix = "{" + prefix + "}:"
        self._reserve = self._client.register_script(RESERVE)
        self._adjust = self._client.register_script(ADJUST)
        self._down_until = 0.0
        self._deltas: dict[str, int] = {}
        self._flusher: asyncio.Task[None] | None = None

    @property
    def up(self) -> bool:
        return time.monotonic() >= self._down_until

    def _mark_down(self, exc: BaseException) -> None:
        if self.up:
            log.warning("redis unreachable", extra={"sg_error": type(exc).__name__})
        self._down_until = time.monotonic() + DOWN_SECONDS

    async def reserve(self, charges: Sequence[Charge]) -> Outcome:
        if not self.up:
            raise CountersUnavailable("redis is down")
        keys = [self._prefix + c.key for c in charges]
        args: list[int] = []
        for c in charges:
            args += [c.amount, c.limit, c.ttl, c.seed]
        try:
            raw = await self._reserve(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            self._mark_down(exc)
            raise CountersUnavailable("redis is unreachable") from None
        first = int(raw[0])
        values = tuple(int(v) for v in raw[1:])
        return Outcome(None if first == 0 else first - 1, values)

    def adjust(self, deltas: Sequence[tuple[str, int]], local: bool = False) -> None:
        """Settle deltas are summed per counter and sent by one flusher task, one script call
        for everything that arrived while the last call was on its way: under load many
        requests' settles share a round trip."""
        for key, delta in deltas:
            if delta:
                self._deltas[key] = self._deltas.get(key, 0) + delta
        if self._deltas and self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._deltas:
                moves, self._deltas = self._deltas, {}
                await self._send_adjust([(self._prefix + k, d) for k, d in moves.items() if d])
        finally:
            self._flusher = None

    async def _send_adjust(self, moves: list[tuple[str, int]]) -> None:
        if not moves:
            return
        try:
            await self._adjust(keys=[k for k, _ in moves], args=[d for _, d in moves])
        except (RedisError, OSError) as exc:
            self._mark_down(exc)
            log.warning("settle delta to redis dropped", extra={"sg_counters": len(moves)})

    async def ping(self) -> bool:
        """Whether Redis answers within PING_SECONDS."""
        try:
            async with asyncio.timeout(PING_SECONDS):
                return bool(await self._client.ping())
        except (RedisError, OSError, TimeoutError):
            return False

    async def health(self) -> dict[str, object]:
        """Down fails the readiness check: requests with limits are refused until it is back."""
        return {"ok": await self.ping(), "backend": "redis"}

    async def drain(self) -> None:
        """Wait for settle deltas still on their way (used at shutdown and in tests)."""
        while self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def close(self) -> None:
        await self.drain()
        await self._client.aclose()


class FallbackCounters:
    """Redis first; while it is down, this process's own counters, with a loud warning. Limits
    are then per replica (N replicas let up to N times a limit through) until Redis is back."""

    def __init__(self, shared: RedisCounters, local: MemoryCounters) -> None:
        self.shared = shared
        self.local = local
        self._degraded = False

    async def reserve(self, charges: Sequence[Charge]) -> Outcome:
        try:
            outcome = await self.shared.reserve(charges)
        except CountersUnavailable:
            if not self._degraded:
                log.error(
                    "redis down: limits and budgets now enforced per replica from local counters"
                )
                self._degraded = True
            local = self.local.reserve_now(charges)
            return Outcome(local.refused, local.values, local=True)
        if self._degraded:
            log.warning("redis back: limits and budgets shared again")
            self._degraded = False
        return outcome

    def adjust(self, deltas: Sequence[tuple[str, int]], local: bool = False) -> None:
        (self.local if local else self.shared).adjust(deltas)

    async def health(self) -> dict[str, object]:
        """Down is ``degraded``, not unready: this replica keeps serving from local counters."""
        return {"ok": True, "backend": "redis", "degraded": not await self.shared.ping()}

    async def close(self) -> None:
        await self.shared.close()
