"""What the response cache keeps, for whom, and under which key.

An answer is cached under the SHA-256 of the normalised request: the route, the scope, and the
body as canonical JSON (keys sorted) without what only describes the caller (``user``,
``metadata``); never the virtual key, the headers or anything else of the connection. The scope
is the caller's team by default (the key itself for a key without a team), so an answer made
for one team is never served to another; ``cache.scope: shared`` lets every caller share them.

Only successful answers are cached: a JSON answer as the bytes sent, a stream whole (its SSE
bytes as sent, replayed as they were) once it ended cleanly. A request with ``Cache-Control:
no-cache`` is not served from the cache (its fresh answer is stored); with ``no-store`` it is
neither served nor stored; a key with ``"cache": false`` in its metadata is never cached for.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.cache.stores import MemoryStore, Store
from gateway.config.cache import Cache as CacheSettings
from gateway.config.governance import Redis as RedisSettings
from gateway.errors import ConfigError
from gateway.metrics import METRICS
from gateway.refs import parse_ref
from gateway.secrets.broker import SecretBroker
from gateway.store.keys import KeyRecord

Route = Literal["chat", "messages", "embeddings"]
Kind = Literal["body", "stream"]

LOOKUPS = METRICS.counter(
    "sealgate_cache_lookups_total", "response cache lookups by route and result (hit, miss)"
)
CALLER_FIELDS = frozenset({"user", "metadata"})  # who is asking, not what is asked
KINDS: dict[Kind, bytes] = {"body": b"B", "stream": b"S"}


@dataclass(frozen=True, slots=True)
class Hit:
    kind: Kind
    data: bytes


@dataclass(slots=True)
class Lookup:
    """One request's place in the cache."""

    cache: ResponseCache
    route: Route
    key: str
    read: bool
    write: bool

    async def get(self) -> Hit | None:
        """The cached answer, counted; a request that may not be served from the cache counts
        as a miss."""
        hit = await self.find()
        self.count(hit)
        return hit

    async def find(self) -> Hit | None:
        """The cached answer, not yet counted (the inference routes look it up before
        admission and count only an admitted request's lookup)."""
        found = await self.cache.store.get(self.key) if self.read else None
        if found is None:
            return None
        kind: Kind = "stream" if found[:1] == KINDS["stream"] else "body"
        return Hit(kind, found[1:])

    def count(self, hit: Hit | None) -> None:
        # counted as a miss too when the request may not be served from the cache
        LOOKUPS[(("route", self.route), ("result", "hit" if hit is not None else "miss"))] += 1

    async def put(self, kind: Kind, data: bytes) -> None:
        if self.write and len(data) <= self.cache.max_entry_bytes:
            await self.cache.store.put(self.key, KINDS[kind] + data)


class ResponseCache:
    def __init__(self, settings: CacheSettings, store: Store) -> None:
        self.store = store
        self.shared = settings.scope == "shared"
        self.max_entry_bytes = settings.max_entry_bytes

    def lookup(
        self,
        route: Route,
        record: KeyRecord,
        body: Mapping[str, Any],
        headers: Mapping[bytes, bytes],
    ) -> Lookup:
        """This request's place in the cache, and whether it may be served from it and stored
        in it (the key's opt-out and the request's Cache-Control say)."""
        if record.metadata.get("cache") is False:
            return Lookup(self, route, "", read=False, write=False)
        directives = {
            part.strip().lower()
            for part in headers.get(b"cache-control", b"").decode("latin-1").split(",")
        }
        stored = "no-store" not in directives
        read = stored and "no-cache" not in directives
        return Lookup(self, route, self.key(route, record, body), read=read, write=stored)

    def key(self, route: Route, record: KeyRecord, body: Mapping[str, Any]) -> str:
        if self.shared:
            scope = "shared"
        elif record.team_id is not None:
            scope = "team:" + record.team_id
        else:
            scope = "key:" + record.id
        asked = {k: v for k, v in body.items() if k not in CALLER_FIELDS}
        text = json.dumps([route, scope, asked], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    async def close(self) -> None:
        await self.store.close()


class Cipher:
    """The AES-GCM key of the Redis entries: from the configured reference (through the
    broker, held in memory), or made at start-up when none is configured (``made``: by the
    process that forked this one, so that its workers share it)."""

    def __init__(
        self,
        broker: SecretBroker,
        reference: str | None,
        what: str = "cache",
        made: bytes | None = None,
    ) -> None:
        self._broker = broker
        self._what = what
        self._ref = parse_ref(reference) if reference is not None else None
        self._made = AESGCM(made or AESGCM.generate_key(bit_length=256))
        self._by_value: tuple[str, AESGCM] | None = None

    async def __call__(self) -> AESGCM:
        if self._ref is None:
            return self._made
        value = (await self._broker.get(self._ref)).reveal()
        if self._by_value is None or self._by_value[0] != value:
            self._by_value = (value, AESGCM(key_bytes(value, self._what)))
        return self._by_value[1]


def key_bytes(value: str, what: str = "cache") -> bytes:
    """32 bytes from 64 hex digits or from base64; ValueError (never echoing it) otherwise."""
    text = value.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise ValueError(f"the {what} encryption key must be 32 bytes, as 64 hex digits or base64")
    return raw


def build_cache(
    settings: CacheSettings | None, redis: RedisSettings | None, broker: SecretBroker
) -> ResponseCache | None:
    if settings is None:
        return None
    if settings.backend == "memory":
        store: Store = MemoryStore(
            settings.ttl_seconds, settings.max_entries, settings.max_bytes, time.monotonic
        )
        return ResponseCache(settings, store)
    if redis is None:  # the config check says so with the line; this is the code's guard
        raise ConfigError("config", "cache.backend", "the redis cache needs governance.redis")
    from gateway.cache.redis_store import RedisStore, client_of  # redis-py: only when used

    client = client_of(redis)
    cipher = Cipher(broker, settings.encryption_key)
    return ResponseCache(settings, RedisStore(client, redis.prefix, settings.ttl_seconds, cipher))
