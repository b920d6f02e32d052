"""What ``previous_response_id`` refers to: the Responses answers this replica gave, per key.

Two kinds of entry, one for each way a response was made (``gateway.api.responses``):

- **passed through** to an OpenAI or Azure deployment: the upstream holds the conversation, so
  the entry holds only which deployment made it. A follow-up is sent to that deployment alone,
  with the id as it is (any other deployment, even of the same model, does not have the state).
- **translated** (every other provider): the upstream holds nothing, so the entry holds the turn
  as chat messages (the request's input and the answer's output) and the id of the turn before;
  a follow-up is sent after the whole chain, oldest turn first.

Either way an id is found only for the key that made it: a key never continues, or reads,
another key's conversation (on a shared upstream account an OpenAI id alone would let it).

Bounded: at most ``max_entries`` entries and ``max_bytes`` of messages in all, and
``per_key_entries`` / ``per_key_bytes`` for one key; past a bound the least recently used entry
goes (the key's own first when its bound is the one passed). State is in memory, per replica: a
restart, another replica or an evicted turn answers the follow-up with a 400 that says so, never
with an answer made without the context the client meant. ``store: false`` keeps nothing.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import InvalidRequest

MAX_ENTRIES = 10_000
MAX_BYTES = 64 * 1024 * 1024
PER_KEY_ENTRIES = 1_000
PER_KEY_BYTES = 8 * 1024 * 1024
MAX_CHAIN = 1_000  # the most turns one follow-up is rebuilt from


@dataclass(slots=True)
class Held:
    key_id: str
    deployment: str | None  # passed through: the deployment that holds the state
    messages: list[dict[str, Any]] = field(default_factory=list)  # translated: this turn
    parent: str | None = None  # translated: the turn before
    size: int = 0


class Conversations:
    def __init__(
        self,
        max_entries: int = MAX_ENTRIES,
        max_bytes: int = MAX_BYTES,
        per_key_entries: int = PER_KEY_ENTRIES,
        per_key_bytes: int = PER_KEY_BYTES,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.per_key_entries = per_key_entries
        self.per_key_bytes = per_key_bytes
        self._entries: OrderedDict[str, Held] = OrderedDict()
        self._keys: dict[str, OrderedDict[str, None]] = {}
        self._key_bytes: dict[str, int] = {}
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def passed_through(self, key_id: str, response_id: str, deployment: str) -> None:
        self._put(response_id, Held(key_id, deployment))

    def translated(
        self, key_id: str, response_id: str, messages: list[dict[str, Any]], parent: str | None
    ) -> None:
        size = len(json.dumps(messages, separators=(",", ":")))
        if size > self.per_key_bytes:
            return  # a turn larger than the key's whole allowance is not kept
        self._put(response_id, Held(key_id, None, messages, parent, size))

    def find(self, key_id: str, response_id: str) -> Held:
        """The entry ``response_id`` names for this key (a 400 when there is none)."""
        held = self._entries.get(response_id)
        if held is None or held.key_id != key_id:
            raise not_found(response_id)
        self._touch(response_id, held)
        return held

    def history(self, key_id: str, held: Held) -> list[dict[str, Any]]:
        """The chat messages of a translated entry's whole chain, oldest first."""
        turns = [held.messages]
        parent = held.parent
        while parent is not None:
            if len(turns) >= MAX_CHAIN:
                raise InvalidRequest(
                    f"this conversation is longer than {MAX_CHAIN} turns",
                    param="previous_response_id",
                )
            earlier = self._entries.get(parent)
            if earlier is None or earlier.key_id != key_id:
                raise not_found(parent, earlier_turn=True)
            turns.append(earlier.messages)
            parent = earlier.parent
        return [message for turn in reversed(turns) for message in turn]

    # -- bounds -----------------------------------------------------------------------------
    def _touch(self, response_id: str, held: Held) -> None:
        self._entries.move_to_end(response_id)
        self._keys[held.key_id].move_to_end(response_id)

    def _put(self, response_id: str, held: Held) -> None:
        if response_id in self._entries:
            self._drop(response_id)
        self._entries[response_id] = held
        self._keys.setdefault(held.key_id, OrderedDict())[response_id] = None
        self._key_bytes[held.key_id] = self._key_bytes.get(held.key_id, 0) + held.size
        self.bytes += held.size
        own = self._keys[held.key_id]
        while len(own) > self.per_key_entries or self._key_bytes[held.key_id] > self.per_key_bytes:
            self._drop(next(iter(own)))
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, response_id: str) -> None:
        held = self._entries.pop(response_id)
        own = self._keys[held.key_id]
        del own[response_id]
        self._key_bytes[held.key_id] -= held.size
        self.bytes -= held.size
        if not own:
            del self._keys[held.key_id]
            del self._key_bytes[held.key_id]


def not_found(response_id: str, earlier_turn: bool = False) -> InvalidRequest:
    which = "an earlier turn of the response" if earlier_turn else "the response"
    return InvalidRequest(
        f"previous_response_id: {which} {response_id[:80]!r} is not held for this key (it was "
        "made with another key, with store: false, on another replica or before a restart, "
        "or it was evicted); send the conversation as input instead",
        param="previous_response_id",
        code="previous_response_not_found",
    )
