"""Where cached answers are kept: an in-memory LRU bounded in entries and bytes, or Redis, where
every entry is encrypted with AES-GCM under a key held only in memory.

An answer can hold anything a client sent or a model wrote, so Redis never sees it in clear. The
entry's Redis key is the associated data of its encryption: an entry copied under another key
(another team's, say) fails to decrypt and counts as a miss. A Redis that cannot be reached, or
an entry that does not decrypt, is a miss (logged), never a failed request.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

import redis.asyncio as aioredis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.exceptions import RedisError

from gateway.errors import GatewayError

log = logging.getLogger("sealgate.cache")

NONCE_BYTES = 12


class Store(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...

    async def close(self) -> None: ...


class MemoryStore:
    """At most ``max_entries`` entries and ``max_bytes`` of them, each for ``ttl`` seconds; the
    least recently used go first."""

    def __init__(
        self,
        ttl: float,
        max_entries: int,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.bytes = 0

    async def get(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, value = found
        if expires <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def put(self, key: str, value: bytes) -> None:
        if len(value) > self._max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self._clock() + self._ttl, value)
        self.bytes += len(value)
        while len(self._entries) > self._max_entries or self.bytes > self._max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self.bytes -= len(value)

    def __len__(self) -> int:
        return len(self._entries)

    async def close(self) -> None:
        self._entries.clear()
        self.bytes = 0


class RedisStore:
    """Entries in Redis under ``{prefix}:cache:<key>``, encrypted, expiring after ``ttl``.
    ``cipher`` gives the AES-GCM key (fetched through the secrets broker, so it lives in memory
    only, like a provider key)."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        ttl: float,
        cipher: Callable[[], Awaitable[AESGCM]],
    ) -> None:
        self._client = client
        self._prefix = "{" + prefix + "}:cache:"
        self._ttl_ms = max(1, int(ttl * 1000))
        self._cipher = cipher

    def name(self, key: str) -> str:
        return self._prefix + key

    async def get(self, key: str) -> bytes | None:
        name = self.name(key)
        try:
            sealed = await self._client.get(name)
        except RedisError as exc:
            log.warning("cache unreachable", extra={"sg_error": type(exc).__name__})
            return None
        if not isinstance(sealed, bytes) or len(sealed) <= NONCE_BYTES:
            return None
        cipher = await self._usable_cipher()
        if cipher is None:
            return None
        try:
            return cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], name.encode())
        except InvalidTag:
            log.warning("cache entry does not decrypt; ignored")
            return None

    async def put(self, key: str, value: bytes) -> None:
        name = self.name(key)
        cipher = await self._usable_cipher()
        if cipher is None:
            return
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + cipher.encrypt(nonce, value, name.encode())
        try:
            await self._client.set(name, sealed, px=self._ttl_ms)
        except RedisError as exc:
            log.warning("cache unreachable", extra={"sg_error": type(exc).__name__})

    async def _usable_cipher(self) -> AESGCM | None:
        """The cipher, or None (logged) when its key cannot be had or is not a key: the cache
        is then a miss for every request, never a failed request and never a clear entry."""
        try:
            return await self._cipher()
        except (ValueError, GatewayError) as exc:
            log.error("cache disabled: %s", exc)
            return None

    async def close(self) -> None:
        await self._client.aclose()
