"""What ``previous_response_id`` refers to: the Responses answers the gateway gave, per key.

Two kinds of entry, one for each way a response was made (``gateway.api.responses``):

- **passed through** to an OpenAI or Azure deployment: the upstream holds the conversation, so
  the entry holds only which deployment made it. A follow-up is sent to that deployment alone,
  with the id as it is (any other deployment, even of the same model, does not have the state).
- **translated** (every other provider): the upstream holds nothing, so the entry holds the turn
  as chat messages (the request's input and the answer's output) and the id of the turn before;
  a follow-up is sent after the whole chain (at most ``MAX_CHAIN`` turns), oldest turn first.

Either way an id is found only for the key that made it: a key never continues, or reads,
another key's conversation (on a shared upstream account an OpenAI id alone would let it).
``store: false`` keeps nothing; a turn over ``max_entry_bytes`` is not kept.

Where the entries live (config ``conversations``, ``gateway.config.conversations``):

- **memory** (``MemoryConversations``, the embedded default): this process only. At most
  ``max_entries`` entries and ``max_bytes`` in all, ``per_key_entries`` / ``per_key_bytes`` for
  one key, each for ``ttl_seconds``; past a bound the least recently used entry goes (the key's
  own first when its bound is the one passed).
- **redis** (``gateway.api.redis_conversations``, the default when ``governance.redis`` is
  set): every replica and worker sees every entry, encrypted, each for ``ttl_seconds``, with
  ``per_key_entries`` / ``per_key_bytes`` for one key, oldest first, trimmed atomically.

A restart (memory), another replica (memory), an expired or evicted turn answers the follow-up
with a 400 ``previous_response_not_found`` that says so; a Redis that cannot be reached answers
it with a 503 ``conversation_state_unavailable``. Never with an answer made without the context
the client meant. A turn that cannot be kept (Redis down) is logged and counted
(``sealgate_conversation_writes_total{result="failed"}``); its answer still goes out.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from gateway.config.conversations import Conversations as ConversationSettings
from gateway.config.governance import Redis as RedisSettings
from gateway.errors import ConfigError, InvalidRequest
from gateway.metrics import METRICS

if TYPE_CHECKING:
    from gateway.secrets.broker import SecretBroker

log = logging.getLogger("sealgate.conversations")

MAX_CHAIN = 1_000  # the most turns one follow-up is rebuilt from
WRITES = METRICS.counter(
    "sealgate_conversation_writes_total",
    "previous_response_id state written, by result (stored, too_large, failed)",
)
Messages = list[dict[str, Any]]


@dataclass(slots=True)
class Held:
    """One response, as kept."""

    key_id: str
    deployment: str | None  # passed through: the deployment that holds the state
    messages: Messages = field(default_factory=list)  # translated: this turn
    parent: str | None = None  # translated: the turn before
    size: int = 0
    expires: float = math.inf


@dataclass(frozen=True, slots=True)
class Previous:
    """What a follow-up continues: the deployment that holds the state (passed through), or
    the chat messages of the whole chain, oldest first (translated)."""

    deployment: str | None
    history: Messages


class Conversations(Protocol):
    async def passed_through(self, key_id: str, response_id: str, deployment: str) -> None: ...

    async def translated(
        self, key_id: str, response_id: str, messages: Messages, parent: str | None
    ) -> None: ...

    async def find(self, key_id: str, response_id: str) -> Previous:
        """What ``response_id`` continues for this key: a 400 when nothing is held for it."""
        ...

    async def close(self) -> None: ...


def previous(key_id: str, held: Held, earlier: Callable[[str], Held | None]) -> Previous:
    """``held`` and, for a translated entry, the chain ``earlier`` finds, oldest first; a 400
    when a turn of it is not held for this key or the chain is longer than ``MAX_CHAIN``."""
    if held.deployment is not None:
        return Previous(held.deployment, [])
    turns = [held.messages]
    parent = held.parent
    while parent is not None:
        if len(turns) >= MAX_CHAIN:
            raise InvalidRequest(
                f"this conversation is longer than {MAX_CHAIN} turns",
                param="previous_response_id",
            )
        found = earlier(parent)
        if found is None or found.key_id != key_id:
            raise not_found(parent, earlier_turn=True)
        turns.append(found.messages)
        parent = found.parent
    return Previous(None, [message for turn in reversed(turns) for message in turn])


def size_of(messages: Messages) -> int:
    return len(json.dumps(messages, separators=(",", ":")))


class MemoryConversations:
    def __init__(
        self,
        settings: ConversationSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        settings = settings or ConversationSettings()
        self.ttl = settings.ttl_seconds
        self.max_entry_bytes = settings.max_entry_bytes
        self.max_entries = settings.max_entries
        self.max_bytes = settings.max_bytes
        self.per_key_entries = settings.per_key_entries
        self.per_key_bytes = settings.per_key_bytes
        self._clock = clock
        self._entries: OrderedDict[str, Held] = OrderedDict()
        self._keys: dict[str, OrderedDict[str, None]] = {}
        self._key_bytes: dict[str, int] = {}
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def passed_through(self, key_id: str, response_id: str, deployment: str) -> None:
        self._put(response_id, Held(key_id, deployment))

    async def translated(
        self, key_id: str, response_id: str, messages: Messages, parent: str | None
    ) -> None:
        size = size_of(messages)
        if size > self.max_entry_bytes:
            WRITES[(("result", "too_large"),)] += 1
            return  # its follow-up is a 400, as for any turn not held
        self._put(response_id, Held(key_id, None, messages, parent, size))

    async def find(self, key_id: str, response_id: str) -> Previous:
        held = self._get(key_id, response_id)
        if held is None:
            raise not_found(response_id)
        self._touch(response_id, held)
        return previous(key_id, held, lambda parent: self._get(key_id, parent))

    async def close(self) -> None:
        self._entries.clear()
        self._keys.clear()
        self._key_bytes.clear()
        self.bytes = 0

    def _get(self, key_id: str, response_id: str) -> Held | None:
        held = self._entries.get(response_id)
        if held is None or held.key_id != key_id:
            return None
        if held.expires <= self._clock():
            self._drop(response_id)
            return None
        return held

    # -- bounds -----------------------------------------------------------------------------
    def _touch(self, response_id: str, held: Held) -> None:
        self._entries.move_to_end(response_id)
        self._keys[held.key_id].move_to_end(response_id)

    def _put(self, response_id: str, held: Held) -> None:
        if response_id in self._entries:
            self._drop(response_id)
        held.expires = self._clock() + self.ttl
        self._entries[response_id] = held
        self._keys.setdefault(held.key_id, OrderedDict())[response_id] = None
        self._key_bytes[held.key_id] = self._key_bytes.get(held.key_id, 0) + held.size
        self.bytes += held.size
        own = self._keys[held.key_id]
        while len(own) > self.per_key_entries or self._key_bytes[held.key_id] > self.per_key_bytes:
            self._drop(next(iter(own)))
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
        WRITES[(("result", "stored"),)] += 1

    def _drop(self, response_id: str) -> None:
        held = self._entries.pop(response_id)
        own = self._keys[held.key_id]
        del own[response_id]
        self._key_bytes[held.key_id] -= held.size
        self.bytes -= held.size
        if not own:
            del self._keys[held.key_id]
            del self._key_bytes[held.key_id]


def not_found(
    response_id: str, earlier_turn: bool = False, why: str | None = None
) -> InvalidRequest:
    which = "an earlier turn of the response" if earlier_turn else "the response"
    because = why or (
        "it was made with another key, with store: false, on another replica or before a "
        "restart, or it expired or was evicted"
    )
    return InvalidRequest(
        f"previous_response_id: {which} {response_id[:80]!r} is not held for this key "
        f"({because}); send the conversation as input instead",
        param="previous_response_id",
        code="previous_response_not_found",
    )


def build_conversations(
    settings: ConversationSettings,
    redis: RedisSettings | None,
    broker: SecretBroker,
    made_key: bytes | None = None,
) -> Conversations:
    """The store config ``conversations`` names: Redis (shared by every replica and worker)
    or this process's memory. ``made_key``: the key the supervisor of ``--workers`` made for
    its workers when ``encryption_key`` is not set (so they read each other's entries)."""
    if not settings.shared(redis is not None):
        return MemoryConversations(settings)
    if redis is None:  # the config check says so with the line; this is the code's guard
        raise ConfigError(
            "config", "conversations.backend", "conversations on redis need governance.redis"
        )
    from gateway.api.redis_conversations import RedisConversations  # redis-py: only when used
    from gateway.cache.redis_store import client_of
    from gateway.cache.responses import Cipher

    if settings.encryption_key is None:
        whose = "this process's own" if made_key is None else "one its workers share"
        log.warning(
            f"conversations.encryption_key is not set: the previous_response_id state in "
            f"Redis is sealed with a key made at start ({whose}), so a follow-up served by "
            "another replica cannot read it (a 400); set it to one reference on every replica"
        )
    cipher = Cipher(broker, settings.encryption_key, "conversations", made_key)
    return RedisConversations(client_of(redis), redis.prefix, settings, cipher)
