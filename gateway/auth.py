"""Who is calling: virtual keys for the API, the admin credential for /admin.

The lookup of a key's row is cached in memory for ``cache_seconds`` (revocation through this
process's admin API takes effect at once; another replica's revocation within that time). Unknown
ids are cached briefly too, so a flood of made-up keys cannot turn into a flood of queries.

A request waits for the key store at most ``LOOKUP_SECONDS``. When the database fails or does not
answer in that time, a key seen before keeps the state it had (as when the database is down), a
key never seen is refused with a 503, and the store is not asked again for
``STORE_RETRY_SECONDS``, so a database that hangs costs one request that wait, not every one.
Lookups run in a few threads of their own (one per key at a time): a hanging database cannot
take the threads the rest of the gateway needs.

A key whose secret does not match its cached row is looked up again (at most once per
``RECHECK_SECONDS`` per key): the row may have been rotated through another replica, and the new
key must work everywhere as soon as it is shown. The key a rotation replaced works until the
grace period stored in the row ends, then gets a 401; a blocked key gets a 401 until unblocked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

import anyio
import anyio.to_thread

from gateway import tokens
from gateway.errors import AuthenticationFailed, StorageUnavailable
from gateway.store.keys import KeyRecord, KeyStore
from gateway.tokens import VIRTUAL_KEY

log = logging.getLogger("sealgate.auth")

NEGATIVE_CACHE_SECONDS = 5.0
MAX_CACHED = 100_000
LOOKUP_SECONDS = 1.0  # the longest a request waits for the key store
STORE_RETRY_SECONDS = 1.0  # after the store failed or hung, how long before it is asked again
LOOKUP_THREADS = 4
RECHECK_SECONDS = 1.0  # how often a key whose secret does not match its cached row is re-read

INVALID = "invalid API key: pass a Sealgate virtual key as 'Authorization: Bearer sk-sg-...'"


class Authenticator:
    def __init__(
        self,
        store: KeyStore,
        cache_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        lookup_seconds: float = LOOKUP_SECONDS,
    ) -> None:
        self._store = store
        self.ttl = cache_seconds  # replaced on a config reload
        self._clock = clock
        self._wait = lookup_seconds
        self._cache: OrderedDict[str, tuple[float, KeyRecord | None]] = OrderedDict()
        self._pending: dict[str, asyncio.Task[KeyRecord | None]] = {}
        self._limiter = anyio.CapacityLimiter(LOOKUP_THREADS)
        self._retry_at = 0.0
        self._degraded = False
        self._rechecked: OrderedDict[str, float] = OrderedDict()

    async def authenticate(self, authorization: str | None) -> KeyRecord:
        if not authorization:
            raise AuthenticationFailed("missing API key: pass 'Authorization: Bearer <key>'")
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise AuthenticationFailed(INVALID)
        key_id = VIRTUAL_KEY.id_of(key)
        if key_id is None:
            raise AuthenticationFailed(INVALID)
        record = await self._lookup(key_id)
        if record is not None and not record.matches(key) and self._may_recheck(key_id):
            record = await self._lookup(key_id, fresh=True)
        if record is None:
            raise AuthenticationFailed(INVALID)
        now = datetime.now(UTC)
        if not record.matches(key):
            if not record.replaced(key):
                raise AuthenticationFailed(INVALID)
            if not record.in_grace(now):
                raise AuthenticationFailed(
                    "this API key was rotated and its grace period has ended; use the new key",
                    code="key_rotated",
                )
        if record.revoked_at is not None:
            raise AuthenticationFailed("this API key has been revoked", code="key_revoked")
        if record.blocked_at is not None:
            raise AuthenticationFailed("this API key is blocked", code="key_blocked")
        if record.expired(now):
            raise AuthenticationFailed("this API key has expired", code="key_expired")
        return record

    def _may_recheck(self, key_id: str) -> bool:
        now = self._clock()
        last = self._rechecked.get(key_id)
        if last is not None and now - last < RECHECK_SECONDS:
            return False
        self._rechecked[key_id] = now
        self._rechecked.move_to_end(key_id)
        while len(self._rechecked) > MAX_CACHED:
            self._rechecked.popitem(last=False)
        return True

    async def _lookup(self, key_id: str, fresh: bool = False) -> KeyRecord | None:
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now and not fresh:
            return cached[1]
        if now >= self._retry_at:
            pending = self._pending.get(key_id)
            if pending is None:
                pending = asyncio.get_running_loop().create_task(self._query(key_id))
                self._pending[key_id] = pending
                pending.add_done_callback(lambda done: self._settled(key_id, done))
            try:
                return await asyncio.wait_for(asyncio.shield(pending), self._wait)
            except Exception as exc:  # noqa: BLE001 - failed or hung: the cache stands in
                self._retry_at = self._clock() + STORE_RETRY_SECONDS
                failure = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
        else:
            failure = "retry_later"
        if cached is None:
            raise StorageUnavailable(
                "this API key cannot be checked right now; try again shortly"
            ) from None
        # The database is down or hangs: a key seen before keeps its last known state until it
        # answers again (revocations made meanwhile through this process still apply: forget()).
        if not self._degraded:
            log.warning(
                "key store unreachable; using the cached key record",
                extra={"sg_error": failure},
            )
            self._degraded = True
        return cached[1]

    async def _query(self, key_id: str) -> KeyRecord | None:
        """One lookup in the store, in a lookup thread; what it finds is cached (also when the
        request that asked has stopped waiting)."""
        record = await anyio.to_thread.run_sync(self._store.get, key_id, limiter=self._limiter)
        if self._degraded:
            log.info("key store answering again")
            self._degraded = False
        ttl = self.ttl if record is not None else min(self.ttl, NEGATIVE_CACHE_SECONDS)
        if ttl > 0:
            self._cache[key_id] = (self._clock() + ttl, record)
            self._cache.move_to_end(key_id)
            while len(self._cache) > MAX_CACHED:
                self._cache.popitem(last=False)
        return record

    def _settled(self, key_id: str, task: asyncio.Task[KeyRecord | None]) -> None:
        if self._pending.get(key_id) is task:
            del self._pending[key_id]
        if not task.cancelled():
            task.exception()  # retrieved: each waiter handled it, or stopped waiting

    def forget(self, key_id: str) -> None:
        self._cache.pop(key_id, None)


class AdminCredential:
    """The admin credential, held only as its SHA-256 (``gateway.tokens``)."""

    def __init__(self, key: str) -> None:
        if len(key) < 16:
            raise ValueError("the admin key must be at least 16 characters")
        self._hash = tokens.digest(key)

    def matches(self, key: str) -> bool:
        return tokens.matches(self._hash, key.strip())

    def check(self, authorization: str | None) -> None:
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key:
            raise AuthenticationFailed(
                "admin credential required: 'Authorization: Bearer <admin key>'"
            )
        if not self.matches(key):
            raise AuthenticationFailed("invalid admin credential")
