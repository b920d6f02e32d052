"""The response cache on Redis (``cache.backend: redis``): entries under ``{prefix}:cache:<key>``,
each sealed with AES-GCM under a key held only in memory, its Redis key the associated data
(``stores`` says why). A module of its own so that redis-py is imported only by a gateway whose
cache is on Redis (issue 23: an idle gateway on embedded defaults stays small)."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.exceptions import RedisError

from gateway.config.governance import Redis as RedisSettings
from gateway.errors import GatewayError

log = logging.getLogger("sealgate.cache")

NONCE_BYTES = 12


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
        value = unseal(cipher, name, sealed)
        if value is None:
            log.warning("cache entry does not decrypt; ignored")
        return value

    async def put(self, key: str, value: bytes) -> None:
        name = self.name(key)
        cipher = await self._usable_cipher()
        if cipher is None:
            return
        try:
            await self._client.set(name, seal(cipher, name, value), px=self._ttl_ms)
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


def seal(cipher: AESGCM, name: str, value: bytes) -> bytes:
    """``value`` encrypted for the Redis key ``name``: a fresh nonce, then the ciphertext and
    its tag, with ``name`` as the associated data (so it decrypts under that name only)."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + cipher.encrypt(nonce, value, name.encode())


def unseal(cipher: AESGCM, name: str, sealed: bytes) -> bytes | None:
    """What ``seal`` sealed for ``name``; None when it does not decrypt (another key, another
    name, or altered)."""
    if len(sealed) <= NONCE_BYTES:
        return None
    try:
        return cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], name.encode())
    except InvalidTag:
        return None


def client_of(settings: RedisSettings) -> aioredis.Redis:
    """A client of governance's Redis with its timeouts (the cache's and the breakers')."""
    return aioredis.Redis.from_url(
        settings.url,
        socket_timeout=settings.timeout_seconds,
        socket_connect_timeout=settings.timeout_seconds,
    )
