"""``previous_response_id``'s state in Redis (``conversations.backend: redis``, the default when
``governance.redis`` is set): every replica and worker continues every conversation.

Layout, all under the one hash tag ``{prefix}`` (one Redis Cluster slot), ``<k>`` the first 32
hex digits of the SHA-256 of the key's id and ``<r>`` those of the response id:

    {prefix}:conv:<k>:<r>        the entry: a link (``P<parent's r>`` or ``N``), then the sealed
                                 JSON of the turn (``seal``: AES-GCM, the name as associated
                                 data), expiring ttl_seconds after it was written
    {prefix}:conv:<k>            the key's entries, by when they were written (a sorted set)
    {prefix}:conv:<k>:bytes      the size of each of them and their ``_total`` (a hash)

Neither a virtual key nor a key id nor a response id is in a name: a reader of Redis learns how
many turns some key holds, not whose. The link is in clear so that one Lua call walks the chain;
it is also in the sealed turn, and each earlier turn is decrypted under the name its authenticated
parent gives, so a link altered in Redis is a turn that does not decrypt, never another
conversation.

Bounds: each entry expires ttl_seconds after it was written (exact: Redis expires it); a turn over
``max_entry_bytes`` is not kept (exact); one key holds at most ``per_key_entries`` entries and
``per_key_bytes`` of sealed turns, its oldest removed first in the same Lua call that adds one
(exact, atomic, whichever replica writes). There is no bound across keys but the sum of theirs:
size Redis (``maxmemory``) for the keys in use; an entry Redis evicts on its own is a follow-up
answered with the 400. Unlike memory, an entry read is not refreshed: a conversation can be
continued until its oldest turn is ttl_seconds old.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.exceptions import RedisError

from gateway.api.conversations import (
    MAX_CHAIN,
    WRITES,
    Held,
    Messages,
    Previous,
    not_found,
    previous,
    size_of,
)
from gateway.cache.redis_store import seal, unseal
from gateway.config.conversations import Conversations as ConversationSettings
from gateway.errors import ConversationsUnavailable, GatewayError

log = logging.getLogger("sealgate.conversations")

HASH_CHARS = 32
NO_PARENT = b"N"
PARENT = b"P"

# KEYS: the key's index, its sizes, the entry. ARGV: the value, ttl ms, the entry's member,
# per-key entries, per-key bytes, the entries' name prefix. Returns how many entries it removed.
WRITE = """
local index, sizes, entry = KEYS[1], KEYS[2], KEYS[3]
local value, ttl, member = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local max_entries, max_bytes, base = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local removed = 0
local function drop(m)
  redis.call('DEL', base .. m)
  local size = tonumber(redis.call('HGET', sizes, m) or '0')
  redis.call('HDEL', sizes, m)
  redis.call('HINCRBY', sizes, '_total', -size)
  redis.call('ZREM', index, m)
  removed = removed + 1
end
if redis.call('EXISTS', index) == 0 then redis.call('DEL', sizes) end  -- none, or evicted
if redis.call('ZSCORE', index, member) then drop(member) end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', now - ttl)) do drop(m) end
redis.call('SET', entry, value, 'PX', ttl)
redis.call('ZADD', index, now, member)
redis.call('HSET', sizes, member, #value)
local total = redis.call('HINCRBY', sizes, '_total', #value)
while redis.call('ZCARD', index) > max_entries or total > max_bytes do
  local oldest = redis.call('ZRANGE', index, 0, 0)[1]
  if not oldest then break end  -- (cannot happen while the sizes follow the index)
  drop(oldest)
  total = tonumber(redis.call('HGET', sizes, '_total') or '0')
end
redis.call('PEXPIRE', index, ttl)
redis.call('PEXPIRE', sizes, ttl)
return removed
"""

# KEYS: the entry named. ARGV: the entries' name prefix, the most entries to read. Returns the
# entry and the earlier ones its links name, newest first, up to the first one missing.
CHAIN = """
local found = {}
local name = KEYS[1]
for i = 1, tonumber(ARGV[2]) do
  local value = redis.call('GET', name)
  if not value then break end
  found[i] = value
  if string.sub(value, 1, 1) ~= 'P' then break end
  name = ARGV[1] .. string.sub(value, 2, 33)
end
return found
"""


def hashed(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:HASH_CHARS]


class RedisConversations:
    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        settings: ConversationSettings,
        cipher: Callable[[], Awaitable[AESGCM]],
    ) -> None:
        self._client = client
        self._base = "{" + prefix + "}:conv:"
        self._ttl_ms = max(1, int(settings.ttl_seconds * 1000))
        self._max_entry_bytes = settings.max_entry_bytes
        self._per_key_entries = settings.per_key_entries
        self._per_key_bytes = settings.per_key_bytes
        self._cipher = cipher
        self._write = client.register_script(WRITE)
        self._chain = client.register_script(CHAIN)

    def index(self, key_id: str) -> str:
        return self._base + hashed(key_id)

    def name(self, key_id: str, response_id: str) -> str:
        return f"{self.index(key_id)}:{hashed(response_id)}"

    async def passed_through(self, key_id: str, response_id: str, deployment: str) -> None:
        await self._put(key_id, response_id, {"d": deployment}, None)

    async def translated(
        self, key_id: str, response_id: str, messages: Messages, parent: str | None
    ) -> None:
        if size_of(messages) > self._max_entry_bytes:
            WRITES[(("result", "too_large"),)] += 1
            return
        await self._put(key_id, response_id, {"m": messages, "p": parent}, parent)

    async def find(self, key_id: str, response_id: str) -> Previous:
        name = self.name(key_id, response_id)
        try:
            cipher = await self._cipher()
        except (ValueError, GatewayError) as exc:
            log.error("conversation state unreadable: %s", exc)
            raise ConversationsUnavailable(
                "previous_response_id: the conversation state cannot be read now (its "
                "encryption key is not usable); try again later or send the conversation as input"
            ) from None
        try:
            values = await self._chain(keys=[name], args=[self.index(key_id) + ":", MAX_CHAIN])
        except (RedisError, OSError) as exc:
            log.warning("conversation state unreachable", extra={"sg_error": type(exc).__name__})
            raise ConversationsUnavailable(
                "previous_response_id: the conversation state store cannot be reached; try "
                "again, or send the conversation as input"
            ) from None
        if not values:
            raise not_found(response_id)
        chain = iter(values)
        first = self._open(cipher, key_id, response_id, name, next(chain))
        if first is None:
            raise not_found(response_id, why=UNREADABLE)

        def earlier(parent: str) -> Held | None:
            value = next(chain, None)
            if value is None:
                return None
            held = self._open(cipher, key_id, parent, self.name(key_id, parent), value)
            if held is None:
                raise not_found(parent, earlier_turn=True, why=UNREADABLE)
            return held

        return previous(key_id, first, earlier)

    async def close(self) -> None:
        await self._client.aclose()

    def _open(
        self, cipher: AESGCM, key_id: str, response_id: str, name: str, value: Any
    ) -> Held | None:
        """The turn sealed in ``value`` for ``name``, or None when it does not decrypt there (or
        is not what this key's ``response_id`` would hold)."""
        if not isinstance(value, bytes) or value[:1] not in (PARENT, NO_PARENT):
            return None
        sealed = value[1 + HASH_CHARS :] if value[:1] == PARENT else value[1:]
        plain = unseal(cipher, name, sealed)
        if plain is None:
            return None
        turn = json.loads(plain)
        if turn.get("k") != key_id or turn.get("r") != response_id:
            return None
        return Held(key_id, turn.get("d"), turn.get("m") or [], turn.get("p"))

    async def _put(
        self, key_id: str, response_id: str, turn: dict[str, Any], parent: str | None
    ) -> None:
        name = self.name(key_id, response_id)
        plain = json.dumps({"k": key_id, "r": response_id, **turn}, separators=(",", ":"))
        try:
            cipher = await self._cipher()
        except (ValueError, GatewayError) as exc:
            WRITES[(("result", "failed"),)] += 1
            log.error("conversation state not kept: %s", exc)
            return
        link = NO_PARENT if parent is None else PARENT + hashed(parent).encode()
        value = link + seal(cipher, name, plain.encode())
        args: list[bytes | str | int] = [value, self._ttl_ms, hashed(response_id)]
        args += [self._per_key_entries, self._per_key_bytes, self.index(key_id) + ":"]
        keys = [self.index(key_id), self.index(key_id) + ":bytes", name]
        try:
            await self._write(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            WRITES[(("result", "failed"),)] += 1
            log.warning("conversation state not kept", extra={"sg_error": type(exc).__name__})
            return
        WRITES[(("result", "stored"),)] += 1


UNREADABLE = (
    "it is held but does not decrypt here: the replicas or workers do not share "
    "conversations.encryption_key, or it was altered"
)
