"""Issue 14, item 1: ``previous_response_id`` with the state in Redis (``conversations``), so a
follow-up on another replica continues the conversation. Real gateway processes on one Redis and
one PostgreSQL, a translated deployment (the fake OpenAI-compatible upstream, which keeps
nothing), and Redis read directly: per key, bounded, expiring, encrypted, and a Redis that is
down refuses the follow-up rather than answer it without its context."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.governance import gateways
from tests.governance.conftest import REDIS_URL, RedisServer
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.redis
STATE_KEY = secrets.token_hex(32)
TEXT = FakeUpstream.REPLY_TEXT


def conversations_config(
    upstream: FakeUpstream,
    redis_url: str,
    prefix: str,
    storage_url: str | None = None,
    **settings: Any,
) -> str:
    text = gateways.config(
        upstream, storage_url=storage_url, redis={"url": redis_url, "prefix": prefix}
    )
    text = text.replace("  counters: redis\n", "")  # the state needs governance.redis only
    if settings:
        text += "conversations:\n" + "".join(f"  {k}: {v}\n" for k, v in settings.items())
    return text


@contextmanager
def replica(workdir: Path, text: str, key: str | None = STATE_KEY) -> Iterator[GatewayProcess]:
    env = {"SEALGATE_CONVERSATIONS_KEY": key} if key is not None else {}
    process = GatewayProcess(workdir, text, env=env).start()
    try:
        yield process
    finally:
        process.stop()


def respond(gateway: GatewayProcess, key: str, text: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/responses",
        json={"model": gateways.MODEL, "input": text, **extra},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def said(upstream: FakeUpstream) -> list[tuple[str, str]]:
    """The (role, text) of each message the last chat call to the upstream carried."""
    messages = [r for r in upstream.requests if r.method == "POST"][-1].body["messages"]
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content)
        out.append((message["role"], content))
    return out


def redis_client(url: str = REDIS_URL) -> redis.Redis:
    return redis.Redis.from_url(url)


def entries(client: redis.Redis, prefix: str) -> list[bytes]:
    """The names of the conversation entries (not the per-key index and sizes)."""
    return [
        name
        for name in client.scan_iter(match="{" + prefix + "}:conv:*")
        if name.count(b":") == 3 and not name.endswith(b":bytes")
    ]


@pytest.fixture
def shared_store(postgres_database: Callable[[], str]) -> str:
    return postgres_database()


@pytest.mark.postgres
def test_a_follow_up_on_another_replica_continues_the_translated_conversation(
    upstream: FakeUpstream, tmp_path: Path, shared_store: str, redis_prefix: str
) -> None:
    text = conversations_config(
        upstream,
        REDIS_URL,
        redis_prefix,
        shared_store,
        encryption_key="env:SEALGATE_CONVERSATIONS_KEY",
    )
    with replica(tmp_path / "a", text) as a, replica(tmp_path / "b", text) as b:
        key = a.create_key([gateways.MODEL])["key"]
        first = respond(a, key, "My name is Ada.")
        assert first.status_code == 200, first.text
        second = respond(b, key, "What is my name?", previous_response_id=first.json()["id"])
        assert second.status_code == 200, second.text
        assert said(upstream) == [
            ("user", "My name is Ada."),
            ("assistant", TEXT),
            ("user", "What is my name?"),
        ]
        # and back on the first replica, streamed: the whole chain, whoever kept which turn
        with httpx.stream(
            "POST",
            a.url + "/v1/responses",
            json={
                "model": gateways.MODEL,
                "input": "Again?",
                "stream": True,
                "previous_response_id": second.json()["id"],
            },
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ) as streamed:
            assert streamed.status_code == 200
            events = [
                json.loads(line[6:]) for line in streamed.iter_lines() if line.startswith("data: ")
            ]
        assert len(said(upstream)) == 5
        third = next(e for e in events if e["type"] == "response.completed")["response"]
        fourth = respond(b, key, "Once more", previous_response_id=third["id"])
        assert fourth.status_code == 200, fourth.text
        assert [t.strip() for _, t in said(upstream)] == [
            "My name is Ada.",
            TEXT,
            "What is my name?",
            TEXT,
            "Again?",
            TEXT,
            "Once more",
        ]


@pytest.mark.postgres
def test_another_key_cannot_continue_or_read_a_conversation_on_any_replica(
    upstream: FakeUpstream, tmp_path: Path, shared_store: str, redis_prefix: str
) -> None:
    text = conversations_config(
        upstream,
        REDIS_URL,
        redis_prefix,
        shared_store,
        encryption_key="env:SEALGATE_CONVERSATIONS_KEY",
    )
    with replica(tmp_path / "a", text) as a, replica(tmp_path / "b", text) as b:
        owner = a.create_key([gateways.MODEL])["key"]
        stranger = a.create_key([gateways.MODEL])["key"]
        made = respond(a, owner, "secret plans").json()["id"]
        before = len(upstream.requests)
        for gateway in (a, b):
            refused = respond(gateway, stranger, "go on", previous_response_id=made)
            assert refused.status_code == 400
            assert refused.json()["error"]["code"] == "previous_response_not_found"
            assert "secret plans" not in refused.text
        assert len(upstream.requests) == before  # refused before anything was sent
        assert respond(b, owner, "go on", previous_response_id=made).status_code == 200


def test_entries_in_redis_are_encrypted_and_named_by_no_key_or_response_id(
    upstream: FakeUpstream, tmp_path: Path, redis_prefix: str
) -> None:
    text = conversations_config(
        upstream, REDIS_URL, redis_prefix, encryption_key="env:SEALGATE_CONVERSATIONS_KEY"
    )
    client = redis_client()
    with replica(tmp_path / "a", text) as a:
        made = a.create_key([gateways.MODEL])
        canary = "canary-" + secrets.token_hex(12)
        first = respond(a, made["key"], canary).json()["id"]
        second = respond(a, made["key"], canary + " again", previous_response_id=first)
        assert second.status_code == 200
        names = entries(client, redis_prefix)
        assert len(names) == 2
        everything = list(client.scan_iter(match="{" + redis_prefix + "}:*"))
        for name in everything:
            for clear in (made["key"], made["id"], first, second.json()["id"], canary):
                assert clear.encode() not in name
            assert client.pttl(name) > 0  # everything expires
        for name in names:
            value = client.get(name)
            assert isinstance(value, bytes)
            for clear in (canary, TEXT, made["key"], made["id"], first, STATE_KEY, "user"):
                assert clear.encode() not in value
    client.close()


def test_the_per_key_bound_evicts_the_oldest_turns_first(
    upstream: FakeUpstream, tmp_path: Path, redis_prefix: str
) -> None:
    text = conversations_config(
        upstream,
        REDIS_URL,
        redis_prefix,
        encryption_key="env:SEALGATE_CONVERSATIONS_KEY",
        per_key_entries=3,
        per_key_bytes=6000,
        max_entry_bytes=3000,
    )
    client = redis_client()
    with replica(tmp_path / "a", text) as a:
        key = a.create_key([gateways.MODEL])["key"]
        other = a.create_key([gateways.MODEL])["key"]
        theirs = respond(a, other, "another key's turn").json()["id"]
        ids = [respond(a, key, f"turn {n}").json()["id"] for n in range(4)]
        assert len(entries(client, redis_prefix)) == 4  # 3 of this key's, 1 of the other's
        gone = respond(a, key, "go on", previous_response_id=ids[0])
        assert gone.status_code == 400
        assert gone.json()["error"]["code"] == "previous_response_not_found"
        for kept in ids[1:]:
            assert respond(a, key, "go on", previous_response_id=kept).status_code == 200
        # a key's bound is its own: the other key's turn is still there
        assert respond(a, other, "go on", previous_response_id=theirs).status_code == 200
        # bytes: two turns of ~2 KB fit in 6000, a third pushes the oldest out
        big = [respond(a, key, f"{n} " + "x" * 2000).json()["id"] for n in range(3)]
        assert respond(a, key, "go on", previous_response_id=big[0]).status_code == 400
        assert respond(a, key, "go on", previous_response_id=big[2]).status_code == 200
        # a turn over max_entry_bytes is not kept at all
        huge = respond(a, key, "y" * 4000).json()["id"]
        assert respond(a, key, "go on", previous_response_id=huge).status_code == 400
        metrics = a.admin("GET", "/metrics").text
        assert 'sealgate_conversation_writes_total{result="too_large"} 1' in metrics
    client.close()


def test_an_entry_expires_after_ttl_seconds_in_redis(
    upstream: FakeUpstream, tmp_path: Path, redis_prefix: str
) -> None:
    text = conversations_config(
        upstream,
        REDIS_URL,
        redis_prefix,
        encryption_key="env:SEALGATE_CONVERSATIONS_KEY",
        ttl_seconds=1.5,
    )
    client = redis_client()
    with replica(tmp_path / "a", text) as a:
        key = a.create_key([gateways.MODEL])["key"]
        made = respond(a, key, "short-lived").json()["id"]
        assert respond(a, key, "go on", previous_response_id=made).status_code == 200
        time.sleep(1.7)
        expired = respond(a, key, "go on", previous_response_id=made)
        assert expired.status_code == 400
        assert expired.json()["error"]["code"] == "previous_response_not_found"
        time.sleep(1.7)  # the follow-up's own turn expires too, and the key's index with it
        assert list(client.scan_iter(match="{" + redis_prefix + "}:*")) == []
    client.close()


@pytest.mark.postgres
def test_without_a_shared_encryption_key_another_replica_says_it_cannot_read_the_state(
    upstream: FakeUpstream, tmp_path: Path, shared_store: str, redis_prefix: str
) -> None:
    text = conversations_config(upstream, REDIS_URL, redis_prefix, shared_store)
    with replica(tmp_path / "a", text, key=None) as a, replica(tmp_path / "b", text, key=None) as b:
        key = a.create_key([gateways.MODEL])["key"]
        made = respond(a, key, "hello").json()["id"]
        before = len(upstream.requests)
        refused = respond(b, key, "go on", previous_response_id=made)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "previous_response_not_found"
        assert "conversations.encryption_key" in refused.json()["error"]["message"]
        assert len(upstream.requests) == before
        assert respond(a, key, "go on", previous_response_id=made).status_code == 200
    for process in (a, b):
        assert "conversations.encryption_key is not set" in process.stderr()
        assert "(this process's own)" in process.stderr()


def test_with_redis_down_a_follow_up_is_refused_and_a_new_response_still_answers(
    upstream: FakeUpstream, tmp_path: Path, redis_server: RedisServer
) -> None:
    text = conversations_config(
        upstream, redis_server.url, "sgdown", encryption_key="env:SEALGATE_CONVERSATIONS_KEY"
    )
    with replica(tmp_path / "a", text) as a:
        made = a.create_key([gateways.MODEL])
        key = made["key"]
        canary = "canary-" + secrets.token_hex(8)
        first = respond(a, key, canary).json()["id"]
        redis_server.stop()
        before = len(upstream.requests)
        refused = respond(a, key, "go on", previous_response_id=first)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "conversation_state_unavailable"
        assert len(upstream.requests) == before  # never answered without its context
        fresh = respond(a, key, "a new conversation")
        assert fresh.status_code == 200
        assert fresh.json()["output"][0]["content"][0]["text"] == TEXT
        metrics = a.admin("GET", "/metrics").text
        assert 'sealgate_conversation_writes_total{result="failed"} 1' in metrics
        assert redis_server.url not in fresh.text
        assert redis_server.url not in refused.text and str(redis_server.port) not in refused.text
    log = a.stderr()
    assert "conversation state not kept" in log
    assert "conversation state unreachable" in log
    for clear in (key, canary, STATE_KEY):
        assert clear not in log


@pytest.mark.postgres
def test_workers_of_one_gateway_continue_each_others_conversations_with_no_key_configured(
    upstream: FakeUpstream, tmp_path: Path, shared_store: str, redis_prefix: str
) -> None:
    """Ten follow-ups, each on a new connection, which the kernel spreads over the two workers
    (all ten on one worker: 1 in 512); each needs the chain the other worker may have kept."""
    from tests.governance.test_workers import Workers, workers_answering

    text = gateways.config(
        upstream, storage_url=shared_store, redis={"url": REDIS_URL, "prefix": redis_prefix}
    )
    process = Workers(tmp_path / "gw", text, 2)
    process.start(wait=False)
    try:
        process.wait_ready()
        assert workers_answering(process) == {"1 of 2", "2 of 2"}
        key = process.create_key([gateways.MODEL])["key"]
        response_id = respond(process, key, "turn 0").json()["id"]
        for turn in range(1, 11):
            answer = respond(process, key, f"turn {turn}", previous_response_id=response_id)
            assert answer.status_code == 200, answer.text
            response_id = answer.json()["id"]
        assert [t for r, t in said(upstream) if r == "user"] == [f"turn {n}" for n in range(11)]
    finally:
        process.stop()
    assert "a key made at start (one its workers share)" in process.stderr()


PAIR = """
deployments:
  - model: gpt-pair
    id: pair-a
    provider: openai
    upstream_model: up-a
    base_url: {upstream}/v1
    credential: env:FAKE_PROVIDER_KEY
    allow_private_network: true
  - model: gpt-pair
    id: pair-b
    provider: openai
    upstream_model: up-b
    base_url: {upstream}/v1
    credential: env:FAKE_PROVIDER_KEY
    allow_private_network: true
router:
  retries: 0
verify:
  mode: "off"
storage:
  url: {storage}
governance:
  default_prices: {{input: "0"}}
  redis: {{url: "{redis}", prefix: {prefix}}}
conversations:
  encryption_key: env:SEALGATE_CONVERSATIONS_KEY
"""


@pytest.mark.postgres
def test_a_follow_up_on_another_replica_goes_to_the_openai_deployment_that_holds_it(
    upstream: FakeUpstream, tmp_path: Path, shared_store: str, redis_prefix: str
) -> None:
    text = PAIR.format(
        upstream=upstream.base_url, storage=shared_store, redis=REDIS_URL, prefix=redis_prefix
    )
    env = {"SEALGATE_CONVERSATIONS_KEY": STATE_KEY, "FAKE_PROVIDER_KEY": "sk-fake-" + "0" * 24}
    a = GatewayProcess(tmp_path / "a", text, env=env).start()
    b = GatewayProcess(tmp_path / "b", text, env=env).start()
    try:
        key = a.create_key(["gpt-pair"])["key"]
        body = {"model": "gpt-pair", "input": "one"}
        response_id = respond_to(a, key, body)
        ids = [response_id]
        for turn in range(6):  # round robin would alternate; the state is with one deployment
            body = {"model": "gpt-pair", "input": f"turn {turn}", "previous_response_id": ids[-1]}
            ids.append(respond_to((a, b)[turn % 2], key, body))
        seen = [r for r in upstream.requests if r.method == "POST"]
        assert len({r.body["model"] for r in seen}) == 1
        assert [r.body.get("previous_response_id") for r in seen] == [None, *ids[:-1]]
    finally:
        a.stop()
        b.stop()


def respond_to(gateway: GatewayProcess, key: str, body: dict[str, Any]) -> str:
    answer = httpx.post(
        gateway.url + "/v1/responses",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    found: str = answer.json()["id"]
    return found
