"""The breakers kept in step across replicas through Redis (``governance.redis``, when set).

Each replica decides from its own copy, so a request never waits on Redis to be routed; the
copy follows Redis within ``SYNC_SECONDS``. Per deployment, under the governance prefix:

    {prefix}:breaker:<deployment>:failures   retryable failures in the window (expires with it)
    {prefix}:breaker:<deployment>:open       set while open, expiring when the cooldown ends
    {prefix}:breaker:<deployment>:tripped    set from opening until a success closes it: with
                                             ``open`` gone, the breaker is half-open
    {prefix}:breaker:<deployment>:probe      the one half-open probe in flight (SET NX)

A failure is counted by a script that opens the breaker for every replica once the failures of
all of them reach the threshold (or the failure was the probe's). A success closes it for all.
Half-open, a replica claims the probe before calling; when another holds it, routing tries
another deployment first. When Redis cannot be reached the replica goes on with its own copy
(logged): the breaker then works as it does without Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.config.routing import Breaker as BreakerSettings
from gateway.routing.breaker import Breakers

log = logging.getLogger("sealgate.routing")

SYNC_SECONDS = 0.5

FAILED = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n >= tonumber(ARGV[2]) or redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  redis.call('SET', KEYS[3], '1')
  redis.call('DEL', KEYS[1], KEYS[4])
  return 1
end
return 0
"""


class SharedBreakers(Breakers):
    def __init__(
        self,
        settings: BreakerSettings,
        cooldown: float,
        client: aioredis.Redis,
        prefix: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(settings, cooldown, clock)
        self._client = client
        self._prefix = "{" + prefix + "}:breaker:"
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.Task[None] | None = None

    def _keys(self, name: str) -> list[str]:
        base = self._prefix + name
        return [f"{base}:failures", f"{base}:open", f"{base}:tripped", f"{base}:probe"]

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def failed(self, name: str, hold: float | None = None) -> None:
        self._count_failure(name, hold)
        self._later(self._report_failure(name, self._hold(hold)))

    async def _report_failure(self, name: str, hold: float) -> None:
        args = [int(self._window * 1000), self._threshold, max(1, int(hold * 1000))]
        try:
            await self._client.eval(FAILED, 4, *self._keys(name), *args)
        except RedisError as exc:
            log.warning("breaker state not shared", extra={"sg_error": type(exc).__name__})
            return
        await self.sync([name])

    def succeeded(self, name: str) -> None:
        was_closed = self.state(name) == "closed" and not self._of(name).failures
        super().succeeded(name)
        if not was_closed:
            self._later(self._close(name))

    async def _close(self, name: str) -> None:
        try:
            await self._client.delete(*self._keys(name))
        except RedisError as exc:
            log.warning("breaker state not shared", extra={"sg_error": type(exc).__name__})

    def _released(self, name: str) -> None:
        self._later(self._unclaim(name))

    async def _unclaim(self, name: str) -> None:
        try:
            await self._client.delete(self._keys(name)[3])
        except RedisError as exc:
            log.warning("breaker state not shared", extra={"sg_error": type(exc).__name__})

    async def attempt(self, name: str) -> bool:
        if self.state(name) != "half_open":
            return True
        try:
            probe_ms = max(1, int(self._cooldown * 1000))
            claimed = await self._client.set(self._keys(name)[3], "1", nx=True, px=probe_ms)
        except RedisError:
            claimed = True  # on its own copy: this replica's probe
        if claimed:
            await super().attempt(name)
        return bool(claimed)

    async def sync(self, names: list[str] | None = None) -> None:
        """Bring this replica's copy in step with Redis (for ``names``, or every deployment)."""
        wanted = list(self._by_name) if names is None else names
        if not wanted:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for name in wanted:
                _, open_key, tripped, probe = self._keys(name)
                pipe.pttl(open_key)
                pipe.exists(tripped)
                pipe.exists(probe)
            answers = await pipe.execute()
        now = self._clock()
        for index, name in enumerate(wanted):
            left, is_tripped, probing = answers[3 * index : 3 * index + 3]
            breaker = self._of(name)
            if left > 0:
                if not breaker.open_until:
                    self._opened(name)
                breaker.open_until = now + left / 1000
                breaker.probing = False
            elif is_tripped:
                if not breaker.open_until or breaker.open_until > now:
                    breaker.open_until = now  # half-open
                breaker.probing = bool(probing)
            elif breaker.open_until:
                super().succeeded(name)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop().create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            try:
                await self.sync()
            except RedisError as exc:
                log.warning("breaker state not shared", extra={"sg_error": type(exc).__name__})
            await asyncio.sleep(SYNC_SECONDS)

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._loop] if self._loop else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._client.aclose()
