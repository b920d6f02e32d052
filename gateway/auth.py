"""Who is calling: virtual keys for the API, the admin credential for /admin.

The lookup of a key's row is cached in memory for ``cache_seconds`` (revocation through this
process's admin API takes effect at once; another replica's revocation within that time). Unknown
ids are cached briefly too, so a flood of made-up keys cannot turn into a flood of queries.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

import anyio.to_thread

from gateway import tokens
from gateway.errors import AuthenticationFailed
from gateway.store.keys import KeyRecord, KeyStore
from gateway.tokens import VIRTUAL_KEY

log = logging.getLogger("sealgate.auth")

NEGATIVE_CACHE_SECONDS = 5.0
MAX_CACHED = 100_000

INVALID = "invalid API key: pass a Sealgate virtual key as 'Authorization: Bearer sk-sg-...'"


class Authenticator:
    def __init__(
        self,
        store: KeyStore,
        cache_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self.ttl = cache_seconds  # replaced on a config reload
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, KeyRecord | None]] = OrderedDict()

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
        if record is None or not record.matches(key):
            raise AuthenticationFailed(INVALID)
        if record.revoked_at is not None:
            raise AuthenticationFailed("this API key has been revoked", code="key_revoked")
        if record.expired(datetime.now(UTC)):
            raise AuthenticationFailed("this API key has expired", code="key_expired")
        return record

    async def _lookup(self, key_id: str) -> KeyRecord | None:
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            record = await anyio.to_thread.run_sync(self._store.get, key_id)
        except Exception:
            if cached is None:
                raise
            # The database is down: a key seen before keeps its last known state until it is
            # back (revocations made meanwhile through this process still apply: forget()).
            log.warning("key store unreachable; using the cached key record")
            return cached[1]
        ttl = self.ttl if record is not None else min(self.ttl, NEGATIVE_CACHE_SECONDS)
        if ttl > 0:
            self._cache[key_id] = (now + ttl, record)
            self._cache.move_to_end(key_id)
            while len(self._cache) > MAX_CACHED:
                self._cache.popitem(last=False)
        return record

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
