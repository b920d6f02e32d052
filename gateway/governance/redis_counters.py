"""Counters in Redis, shared by every replica: one Lua script checks and adds each request's
charges atomically, another applies the settle deltas.

Round trips are shared. Reservations that arrive while one script call is on its way go together
in the next call: the script takes each request's charges in turn, all-or-nothing per request,
exactly as if each had its own call (a script runs atomically, so no other client sees a request
half-reserved). Settle deltas are summed per counter and sent the same way. Under load many
requests share a round trip; alone, a request waits for no one.

When Redis cannot be reached, ``reserve`` raises CountersUnavailable at once for the next
``DOWN_SECONDS`` instead of waiting on a connect timeout per request; the caller decides whether
that fails closed or falls back to local counters. Settle deltas that cannot be delivered are
dropped with a warning: a reservation that is never settled only over-counts (the safe side),
and budgets are re-seeded from the spend table in the database, which the outbox keeps exact.

All keys go to one script call, so a Redis Cluster needs them in one slot: the prefix is wrapped
in a hash tag (``{sealgate}:...``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
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
MAX_BATCH = 256  # requests per reservation call
Ask = tuple[Sequence[Charge], "asyncio.Future[Outcome]"]

# Both scripts take their numbers as one string (ARGV[1], space-separated) and answer with one
# string: packing and parsing dozens of separate arguments and replies costs the client more than
# the script costs Redis. Numbers go back to Redis through '%d', never Lua's default number
# format, which would write 1.2345678901234e+14 for a large budget total.
#
# RESERVE: per request, its number of charges n, then n groups of (amount, limit, ttl, seed);
# KEYS holds every request's counters in the same order. The answer, per request: 0 (all added)
# or the 1-based index of the first charge that did not fit, then the n counter values (after
# the add, or as found when refused).
RESERVE = """
local spec = {}
for token in string.gmatch(ARGV[1], '%S+') do spec[#spec + 1] = tonumber(token) end
local out = {}
local k, a = 0, 1
while a <= #spec do
  local n = spec[a]
  a = a + 1
  local values = {}
  for i = 1, n do
    local current = redis.call('GET', KEYS[k + i])
    if current then values[i] = tonumber(current) else values[i] = spec[a + 4 * i - 1] end
  end
  local refused = 0
  for i = 1, n do
    if values[i] + spec[a + 4 * i - 4] > spec[a + 4 * i - 3] then
      refused = i
      break
    end
  end
  if refused == 0 then
    for i = 1, n do
      local amount = spec[a + 4 * i - 4]
      if redis.call('EXISTS', KEYS[k + i]) == 0 then
        values[i] = values[i] + amount
        redis.call('SET', KEYS[k + i], string.format('%d', values[i]), 'EX', spec[a + 4 * i - 2])
      else
        values[i] = redis.call('INCRBY', KEYS[k + i], string.format('%d', amount))
      end
    end
  end
  out[#out + 1] = string.format('%d', refused)
  for i = 1, n do out[#out + 1] = string.format('%d', values[i]) end
  k = k + n
  a = a + 4 * n
end
return table.concat(out, ' ')
"""

# ADJUST: one delta per key in ARGV[1]; a counter that has expired is left alone.
ADJUST = """
local i = 0
for delta in string.gmatch(ARGV[1], '%S+') do
  i = i + 1
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBY', KEYS[i], delta)
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
        self._asks: deque[Ask] = deque()
        self._reserver: asyncio.Task[None] | None = None

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
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Outcome] = loop.create_future()
        self._asks.append((charges, waiter))
        if self._reserver is None:
            self._reserver = loop.create_task(self._send_reservations())
        return await waiter

    async def _send_reservations(self) -> None:
        """Send what has been asked, one script call at a time, until nothing is waiting."""
        batch: list[Ask] = []
        try:
            while self._asks:
                if not self.up:
                    raise CountersUnavailable("redis is down")
                count = min(len(self._asks), MAX_BATCH)
                batch = [self._asks.popleft() for _ in range(count)]
                batch = [ask for ask in batch if not ask[1].cancelled()]
                if batch:
                    await self._reserve_batch(batch)
                batch = []
        except BaseException as exc:
            failure = exc if isinstance(exc, CountersUnavailable) else None
            for _, waiter in [*batch, *self._asks]:
                if not waiter.done():
                    waiter.set_exception(failure or CountersUnavailable("redis call failed"))
            self._asks.clear()
            if failure is None:
                raise
        finally:
            self._reserver = None

    async def _reserve_batch(self, batch: list[Ask]) -> None:
        keys: list[str] = []
        spec: list[str] = []
        for charges, _ in batch:
            spec.append(str(len(charges)))
            for c in charges:
                keys.append(self._prefix + c.key)
                spec.append(f"{c.amount} {c.limit} {c.ttl} {c.seed}")
        try:
            raw = await self._reserve(keys=keys, args=[" ".join(spec)])
        except (RedisError, OSError) as exc:
            self._mark_down(exc)
            raise CountersUnavailable("redis is unreachable") from None
        numbers = list(map(int, raw.split()))
        at = 0
        for charges, waiter in batch:
            n = len(charges)
            refused = numbers[at]
            outcome = Outcome(
                None if refused == 0 else refused - 1, tuple(numbers[at + 1 : at + 1 + n])
            )
            at += 1 + n
            if not waiter.cancelled():
                waiter.set_result(outcome)
            elif outcome.ok:  # its caller is gone: give the reservation back
                self.adjust([(c.key, -c.amount) for c in charges])

    def adjust(self, deltas: Sequence[tuple[str, int]], local: bool = False) -> None:
        """Settle deltas are summed per counter and sent by one flusher task, one script call
        for everything that arrived while the last call was on its way."""
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
            deltas = " ".join(str(d) for _, d in moves)
            await self._adjust(keys=[k for k, _ in moves], args=[deltas])
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
        """Wait for reservations and settle deltas still on their way (at shutdown, in tests)."""
        while self._reserver is not None or self._flusher is not None:
            pending = [t for t in (self._reserver, self._flusher) if t is not None]
            await asyncio.gather(*pending, return_exceptions=True)

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
