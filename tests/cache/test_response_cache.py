"""The response cache through a real gateway process and a real upstream on loopback: hit and
miss, team isolation, streams replayed byte for byte, Cache-Control and the per-key opt-out,
errors not cached, hits in spend as cached requests; and in Redis, entries encrypted (read from
Redis directly, with no plaintext in them)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis
from sqlalchemy import select

from gateway.store.db import default_url, make_engine
from gateway.store.tables import spend
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

REDIS_URL = os.environ.get("SEALGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CACHE_KEY = secrets.token_hex(32)

CONFIG = """
deployments:
  - model: fake-gpt
    provider: openai_compatible
    base_url: {upstream}/v1
    allow_private_network: true
    timeouts: {{connect: 1, read: 5, total: 10}}
router:
  retries: 0
verify:
  mode: "off"
cache: {cache}
governance:
  default_prices: {{input: "1", output: "2"}}
{governance}
"""


def start(
    workdir: Path, upstream: FakeUpstream, cache: str, governance: str = ""
) -> GatewayProcess:
    text = CONFIG.format(upstream=upstream.base_url, cache=cache, governance=governance)
    return GatewayProcess(workdir, text, env={"SEALGATE_CACHE_KEY": CACHE_KEY}).start()


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    process = start(tmp_path_factory.mktemp("cache"), upstream_server, "{backend: memory}")
    yield process
    process.stop()


def ask(
    gateway: GatewayProcess,
    key: str,
    text: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> httpx.Response:
    body = {"model": "fake-gpt", "messages": [{"role": "user", "content": text}], **extra}
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}", **(headers or {})},
        timeout=10,
    )


def unique() -> str:
    return "question " + secrets.token_hex(8)


def test_the_second_identical_request_is_a_hit_that_never_reaches_the_upstream(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    key = gateway.create_key(["fake-gpt"])["key"]
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    text = unique()
    messages: Any = [{"role": "user", "content": text}]
    first = client.chat.completions.with_raw_response.create(model="fake-gpt", messages=messages)
    second = client.chat.completions.with_raw_response.create(model="fake-gpt", messages=messages)
    assert first.headers["x-sealgate-cache"] == "miss"
    assert second.headers["x-sealgate-cache"] == "hit"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert len(upstream.requests) == 1
    # the caller's own metadata is not part of what is asked
    assert ask(gateway, key, text, user="someone-else").headers["x-sealgate-cache"] == "hit"
    assert ask(gateway, key, text, temperature=0.5).headers["x-sealgate-cache"] == "miss"


def test_the_same_request_from_two_teams_never_shares_an_answer(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    teams = [gateway.admin("POST", "/admin/teams", json={"name": n}).json() for n in ("t1", "t2")]
    one, two = (gateway.create_key(["fake-gpt"], team_id=t["id"])["key"] for t in teams)
    one_again = gateway.create_key(["fake-gpt"], team_id=teams[0]["id"])["key"]
    text = unique()
    assert ask(gateway, one, text).headers["x-sealgate-cache"] == "miss"
    assert ask(gateway, two, text).headers["x-sealgate-cache"] == "miss"
    assert len(upstream.requests) == 2
    # another key of the first team shares its team's answers
    assert ask(gateway, one_again, text).headers["x-sealgate-cache"] == "hit"
    assert len(upstream.requests) == 2


def raw_stream(gateway: GatewayProcess, key: str, text: str) -> tuple[str, bytes]:
    body = {"model": "fake-gpt", "stream": True, "messages": [{"role": "user", "content": text}]}
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    ) as response:
        assert response.status_code == 200
        return response.headers["x-sealgate-cache"], response.read()


def test_a_stream_is_cached_whole_and_replayed_byte_for_byte(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    key = gateway.create_key(["fake-gpt"])["key"]
    text = unique()
    first = raw_stream(gateway, key, text)
    second = raw_stream(gateway, key, text)
    assert first[0] == "miss" and second[0] == "hit"
    assert second[1] == first[1]
    assert first[1].endswith(b"data: [DONE]\n\n")
    assert len(upstream.requests) == 1
    # the same question asked without streaming is another entry
    assert ask(gateway, key, text).headers["x-sealgate-cache"] == "miss"


def test_a_stream_cut_by_the_upstream_is_not_cached(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    key = gateway.create_key(["fake-gpt"])["key"]
    text = unique()
    upstream.then(end_after=1)  # ends early: no [DONE], an incomplete answer
    raw_stream(gateway, key, text)
    assert raw_stream(gateway, key, text)[0] == "miss"
    assert len(upstream.requests) == 2


def test_an_error_is_never_cached(gateway: GatewayProcess, upstream: FakeUpstream) -> None:
    key = gateway.create_key(["fake-gpt"])["key"]
    text = unique()
    upstream.then(status=500)
    assert ask(gateway, key, text).status_code == 502
    answer = ask(gateway, key, text)
    assert answer.status_code == 200 and answer.headers["x-sealgate-cache"] == "miss"
    assert len(upstream.requests) == 2


def test_no_store_is_neither_served_nor_stored_and_no_cache_refreshes(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    key = gateway.create_key(["fake-gpt"])["key"]
    text = unique()
    no_store = {"Cache-Control": "no-store"}
    assert ask(gateway, key, text, no_store).headers["x-sealgate-cache"] == "miss"
    assert ask(gateway, key, text).headers["x-sealgate-cache"] == "miss"  # nothing was stored
    assert ask(gateway, key, text, no_store).headers["x-sealgate-cache"] == "miss"
    assert ask(gateway, key, text).headers["x-sealgate-cache"] == "hit"
    no_cache = {"Cache-Control": "max-age=0, no-cache"}
    assert ask(gateway, key, text, no_cache).headers["x-sealgate-cache"] == "miss"
    assert len(upstream.requests) == 4


def test_a_key_that_opts_out_is_never_served_from_the_cache(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    key = gateway.create_key(["fake-gpt"], metadata={"cache": False})["key"]
    text = unique()
    assert [ask(gateway, key, text).headers["x-sealgate-cache"] for _ in range(2)] == ["miss"] * 2
    assert len(upstream.requests) == 2


def test_embeddings_are_cached(gateway: GatewayProcess, upstream: FakeUpstream) -> None:
    key = gateway.create_key(["fake-gpt"])["key"]
    body = {"model": "fake-gpt", "input": unique()}
    seen = [
        httpx.post(
            gateway.url + "/v1/embeddings",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        ).headers["x-sealgate-cache"]
        for _ in range(2)
    ]
    assert seen == ["miss", "hit"]
    assert len(upstream.requests) == 1


def test_a_hit_is_recorded_in_spend_as_cached_with_no_upstream_cost(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    made = gateway.create_key(["fake-gpt"])
    text = unique()
    assert ask(gateway, made["key"], text).status_code == 200
    assert ask(gateway, made["key"], text).headers["x-sealgate-cache"] == "hit"
    engine = make_engine(default_url(gateway.data_dir))
    try:
        with engine.connect() as connection:
            query = select(spend.c.status, spend.c.cost_nanos, spend.c.deployment).where(
                spend.c.key_id == made["id"]
            )
            rows = sorted(tuple(r) for r in connection.execute(query))
    finally:
        engine.dispose()
    assert len(rows) == 2
    (cached_row, ok_row) = rows
    assert cached_row == ("cached", 0, None)
    assert ok_row[0] == "ok" and ok_row[1] > 0


def lookups(gateway: GatewayProcess, result: str) -> float:
    """``sealgate_cache_lookups_total`` of the chat route with that result, from /metrics."""
    prefix = f'sealgate_cache_lookups_total{{result="{result}",route="chat"}} '
    for line in gateway.admin("GET", "/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return 0.0


def test_a_hit_counts_against_the_keys_requests_per_minute_and_is_refused_past_it(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    # issue 16: the cache is read before admission, but a hit is still admitted (and refused)
    # by the key's limits exactly as a miss is, and only an admitted lookup is counted
    key = gateway.create_key(["fake-gpt"], rpm_limit=2)["key"]
    text = unique()
    assert ask(gateway, key, text).headers["x-sealgate-cache"] == "miss"
    assert ask(gateway, key, text).headers["x-sealgate-cache"] == "hit"
    hits = lookups(gateway, "hit")
    refused = ask(gateway, key, text)
    assert refused.status_code == 429
    assert "x-sealgate-cache" not in refused.headers
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert lookups(gateway, "hit") == hits
    assert len(upstream.requests) == 1


def test_a_hit_is_refused_by_the_keys_tokens_per_minute_once_they_are_spent(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    # issue 16: a hit uses no deployment's tokens, but it is admitted by the key's own limits
    # like any request: the lookup comes first, the refusal still wins, nothing is served
    key = gateway.create_key(["fake-gpt"], tpm_limit=30)["key"]
    text = unique()
    first = ask(gateway, key, text, max_tokens=4)  # estimated under 30; the upstream reports 18
    assert (first.status_code, first.headers["x-sealgate-cache"]) == (200, "miss")
    hits = lookups(gateway, "hit")
    refused = ask(gateway, key, text, max_tokens=4)  # 18 spent + the estimate pass 30
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert "x-sealgate-cache" not in refused.headers
    assert lookups(gateway, "hit") == hits
    assert len(upstream.requests) == 1


@pytest.mark.redis
def test_entries_in_redis_are_encrypted_and_hits_are_served_from_them(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    prefix = "sgtest-" + secrets.token_hex(6)
    governance = f"  counters: redis\n  redis: {{url: '{REDIS_URL}', prefix: {prefix}}}\n"
    cache = "{backend: redis, encryption_key: 'env:SEALGATE_CACHE_KEY'}"
    process = start(tmp_path, upstream, cache, governance)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        key = process.create_key(["fake-gpt"])["key"]
        canary = "canary-" + secrets.token_hex(12)
        assert ask(process, key, canary).headers["x-sealgate-cache"] == "miss"
        streamed = raw_stream(process, key, canary + " streamed")
        hit = ask(process, key, canary)
        assert hit.headers["x-sealgate-cache"] == "hit"
        assert raw_stream(process, key, canary + " streamed") == ("hit", streamed[1])
        assert len(upstream.requests) == 2
        names = list(client.scan_iter(match="{" + prefix + "}:cache:*"))
        assert len(names) == 2
        answer_text = FakeUpstream.REPLY_TEXT.encode()
        for name in names:
            assert key.encode() not in name and canary.encode() not in name  # a hash only
            value = client.get(name)
            assert isinstance(value, bytes)
            for plaintext in (answer_text, b"chat.completion", canary.encode(), b"[DONE]"):
                assert plaintext not in value
            assert key.encode() not in value and CACHE_KEY.encode() not in value
            assert client.pttl(name) > 0  # every entry expires
    finally:
        process.stop()
        for name in client.scan_iter(match="{" + prefix + "}:*"):
            client.delete(name)
        client.close()


@pytest.mark.redis
def test_a_malformed_encryption_key_turns_the_redis_cache_off_loudly_not_into_clear_entries(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    prefix = "sgtest-" + secrets.token_hex(6)
    governance = f"  counters: redis\n  redis: {{url: '{REDIS_URL}', prefix: {prefix}}}\n"
    cache = "{backend: redis, encryption_key: 'env:SEALGATE_BAD_CACHE_KEY'}"
    text = CONFIG.format(upstream=upstream.base_url, cache=cache, governance=governance)
    env = {"SEALGATE_BAD_CACHE_KEY": "not-a-key"}
    process = GatewayProcess(tmp_path, text, env=env).start()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        key = process.create_key(["fake-gpt"])["key"]
        answers = [ask(process, key, "same question") for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200]
        assert [a.headers["x-sealgate-cache"] for a in answers] == ["miss", "miss"]
        assert list(client.scan_iter(match="{" + prefix + "}:cache:*")) == []
    finally:
        process.stop()
        for name in client.scan_iter(match="{" + prefix + "}:*"):
            client.delete(name)
        client.close()
    assert "cache disabled: the cache encryption key must be 32 bytes" in process.stderr()


def test_the_messages_route_is_cached_apart_from_chat(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    key = gateway.create_key(["fake-gpt"])["key"]
    text = unique()
    body = {"model": "fake-gpt", "max_tokens": 64, "messages": [{"role": "user", "content": text}]}
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    answers = [
        httpx.post(gateway.url + "/v1/messages", json=body, headers=headers, timeout=10)
        for _ in range(2)
    ]
    assert [a.headers["x-sealgate-cache"] for a in answers] == ["miss", "hit"]
    assert answers[1].json()["type"] == "message" and answers[1].content == answers[0].content
    # the same question on the OpenAI route is another entry (another answer shape)
    assert ask(gateway, key, text, max_tokens=64).headers["x-sealgate-cache"] == "miss"
    assert len(upstream.requests) == 2
