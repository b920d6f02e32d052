"""``previous_response_id``'s stores without a gateway around them: the memory store's bounds and
expiry, the Redis store's chain read in one call and what it does with an entry altered in
Redis (real Redis), and the ``conversations`` config section's checks."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.api.conversations import MAX_CHAIN, MemoryConversations, build_conversations
from gateway.api.redis_conversations import RedisConversations
from gateway.config.conversations import Conversations as Settings
from gateway.config.governance import Redis as RedisSettings
from gateway.errors import ConfigError, ConversationsUnavailable, InvalidRequest
from gateway.serve import parse_config

pytestmark = pytest.mark.anyio
REDIS_URL = os.environ.get("SEALGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
GOOD = """
deployments:
  - model: gpt
    provider: openai
    base_url: https://api.openai.com/v1
    credential: env:OPENAI_API_KEY
"""


def turn(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}, {"role": "assistant", "content": "ok " + text}]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_memory_entry_expires_after_ttl_seconds() -> None:
    clock = Clock()
    store = MemoryConversations(Settings(ttl_seconds=10), clock)
    await store.translated("k1", "r1", turn("one"), None)
    clock.now = 9.9
    assert (await store.find("k1", "r1")).history == turn("one")
    clock.now = 10.0
    with pytest.raises(InvalidRequest, match="expired or was evicted"):
        await store.find("k1", "r1")
    assert len(store) == 0


async def test_a_memory_key_never_finds_another_keys_entry_and_its_bound_is_its_own() -> None:
    store = MemoryConversations(Settings(per_key_entries=2))
    await store.translated("k2", "theirs", turn("theirs"), None)
    for n in range(3):
        await store.translated("k1", f"r{n}", turn(str(n)), None)
    with pytest.raises(InvalidRequest) as caught:
        await store.find("k1", "theirs")
    assert caught.value.code == "previous_response_not_found"
    with pytest.raises(InvalidRequest):
        await store.find("k1", "r0")  # the key's oldest went
    assert (await store.find("k2", "theirs")).history == turn("theirs")


async def test_a_turn_over_max_entry_bytes_is_not_kept_in_memory() -> None:
    store = MemoryConversations(Settings(max_entry_bytes=1024, per_key_bytes=4096))
    await store.translated("k1", "big", turn("x" * 2000), None)
    assert len(store) == 0


@pytest.fixture
async def shared() -> AsyncIterator[RedisConversations]:
    prefix = "sgtest-" + secrets.token_hex(6)
    key = AESGCM(AESGCM.generate_key(bit_length=256))

    async def cipher() -> AESGCM:
        return key

    client = aioredis.Redis.from_url(REDIS_URL)
    # room for one chain longer than MAX_CHAIN under one key
    store = RedisConversations(client, prefix, Settings(per_key_entries=MAX_CHAIN + 10), cipher)
    yield store
    async for name in client.scan_iter(match="{" + prefix + "}:*"):
        await client.delete(name)
    await store.close()


async def test_a_chain_in_redis_is_read_whole_oldest_first(shared: RedisConversations) -> None:
    parent = None
    for n in range(5):
        await shared.translated("k1", f"r{n}", turn(str(n)), parent)
        parent = f"r{n}"
    found = await shared.find("k1", "r4")
    assert found.deployment is None
    assert found.history == [m for n in range(5) for m in turn(str(n))]
    await shared.passed_through("k1", "resp_up", "gpt/openai")
    assert (await shared.find("k1", "resp_up")).deployment == "gpt/openai"


async def test_a_chain_longer_than_max_chain_is_refused(shared: RedisConversations) -> None:
    parent = None
    for n in range(MAX_CHAIN + 1):
        await shared.translated("k1", f"r{n}", [], parent)
        parent = f"r{n}"
    assert (await shared.find("k1", f"r{MAX_CHAIN - 1}")).history == []
    with pytest.raises(InvalidRequest, match=f"longer than {MAX_CHAIN} turns"):
        await shared.find("k1", f"r{MAX_CHAIN}")


async def test_an_entry_moved_or_relinked_in_redis_does_not_decrypt_and_is_refused(
    shared: RedisConversations,
) -> None:
    client = shared._client
    await shared.translated("k1", "mine", turn("mine"), None)
    await shared.translated("k2", "theirs", turn("their secret"), None)
    await shared.translated("k1", "next", turn("next"), "mine")
    # their entry copied under one of k1's names
    await client.set(shared.name("k1", "mine"), await client.get(shared.name("k2", "theirs")))
    with pytest.raises(InvalidRequest, match="does not decrypt here") as caught:
        await shared.find("k1", "next")
    assert "their secret" not in caught.value.message


async def test_a_redis_that_cannot_be_reached_refuses_the_follow_up_with_a_503() -> None:
    async def cipher() -> AESGCM:
        return AESGCM(bytes(32))

    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    store = RedisConversations(client, "sgtest-down", Settings(), cipher)
    await store.translated("k1", "r1", turn("lost"), None)  # logged and counted, not raised
    with pytest.raises(ConversationsUnavailable) as caught:
        await store.find("k1", "r1")
    assert caught.value.http_status == 503
    assert caught.value.code == "conversation_state_unavailable"
    await store.close()


def test_conversations_on_redis_without_governance_redis_are_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(GOOD + "conversations: {backend: redis}\n", "gw.yaml")
    assert caught.value.key.startswith("conversations.backend")
    assert "governance.redis" in caught.value.problem


def test_conversations_settings_are_strict() -> None:
    with pytest.raises(ConfigError, match="is not a known key"):
        parse_config(GOOD + "conversations: {ttl: 5}\n", "gw.yaml")
    with pytest.raises(ConfigError, match="max_entry_bytes must not be larger"):
        parse_config(
            GOOD + "conversations: {max_entry_bytes: 9000, per_key_bytes: 4096}\n", "gw.yaml"
        )
    with pytest.raises(ConfigError, match="reference"):
        parse_config(GOOD + "conversations: {encryption_key: " + "ab" * 32 + "}\n", "gw.yaml")


async def test_auto_keeps_the_state_in_redis_only_when_governance_redis_is_set() -> None:
    config = parse_config(GOOD, "gw.yaml")
    assert config.conversations.backend == "auto"
    broker: Any = None  # neither store reads a secret at build time
    embedded = build_conversations(config.conversations, None, broker)
    assert isinstance(embedded, MemoryConversations)
    shared = build_conversations(config.conversations, RedisSettings(url=REDIS_URL), broker)
    assert isinstance(shared, RedisConversations)
    await shared.close()
    pinned = build_conversations(Settings(backend="memory"), RedisSettings(url=REDIS_URL), broker)
    assert isinstance(pinned, MemoryConversations)


async def test_a_key_whose_index_redis_evicted_still_keeps_new_turns(
    shared: RedisConversations,
) -> None:
    client = shared._client
    await shared.translated("k1", "r1", turn("one"), None)
    await client.delete(shared.index("k1"))  # as maxmemory eviction may: the sizes outlive it
    await client.hset(shared.index("k1") + ":bytes", "_total", 10**12)
    await shared.translated("k1", "r2", turn("two"), None)
    assert (await shared.find("k1", "r2")).history == turn("two")
