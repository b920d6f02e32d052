"""The access log (issue 17, item 3): one JSON line per request on ``sealgate.access``, with who
called, what it cost and how long it took, for every status; ``x-request-id`` taken from the
client when valid, made otherwise, and returned on every answer. Never a key, never content."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.observability.conftest import (
    CHEAP,
    DEPLOYMENT,
    PROVIDER_KEY,
    access_lines,
    chat,
    config,
)
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

SECRET_WORDS = "the secret words of the prompt"


def by_id(gateway: GatewayProcess, request_id: str) -> dict[str, Any]:
    """The one line of this request (written just after its answer went out: waited for)."""
    deadline = time.monotonic() + 10
    while True:
        found = [e for e in access_lines(gateway) if e["request_id"] == request_id]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    (line,) = found
    return line


def test_each_status_gets_one_line_with_the_callers_ids_usage_and_cost(
    observed: GatewayProcess, upstream: FakeUpstream
) -> None:
    team = observed.admin("POST", "/admin/teams", json={"name": "red"}).json()
    user = observed.admin("POST", "/admin/users", json={"name": "ann", "team_id": team["id"]})
    created = observed.create_key(
        ["gpt", "embed", "dead"],
        team_id=team["id"],
        user_id=user.json()["id"],
        metadata={"project": "alpha"},
    )
    key = created["key"]

    ok = chat(observed, key, headers={"x-request-id": "client-1"})
    assert ok.status_code == 200 and ok.headers["x-request-id"] == "client-1"
    line = by_id(observed, "client-1")
    assert line["status"] == 200 and line["outcome"] == "ok"
    assert (line["key_id"], line["team_id"], line["user_id"]) == (
        created["id"],
        team["id"],
        user.json()["id"],
    )
    assert (line["project"], line["model"], line["deployment"]) == ("alpha", "gpt", DEPLOYMENT)
    assert (line["prompt_tokens"], line["completion_tokens"], line["cached_tokens"]) == (11, 7, 0)
    assert line["cost_usd"] == pytest.approx(0.025)
    assert line["method"] == "POST" and line["path"] == "/v1/chat/completions"
    assert line["latency_ms"] > 0 and len(line["spend_id"]) == 32
    assert "ttft_ms" not in line  # not a stream

    streamed = chat(observed, key, headers={"x-request-id": "client-2"}, stream=True)
    assert streamed.status_code == 200 and streamed.headers["x-request-id"] == "client-2"
    line = by_id(observed, "client-2")
    assert line["status"] == 200 and line["completion_tokens"] == 7
    assert 0 < line["ttft_ms"] <= line["latency_ms"]

    refused = chat(observed, "sk-sg-not-a-key-" + "x" * 30)
    assert refused.status_code == 401
    line = by_id(observed, refused.headers["x-request-id"])
    assert line["status"] == 401 and "key_id" not in line and "model" not in line

    unknown = chat(observed, key, model="nope")
    assert unknown.status_code == 404
    line = by_id(observed, unknown.headers["x-request-id"])
    assert line["status"] == 404 and line["key_id"] == created["id"] and "spend_id" not in line

    upstream.then(status=500)
    failed = chat(observed, key)
    assert failed.status_code >= 500
    line = by_id(observed, failed.headers["x-request-id"])
    assert line["status"] == failed.status_code and line["outcome"] == "upstream_error"
    assert line["deployment"] is None and line["cost_usd"] == 0

    dead = chat(observed, key, model="dead")
    line = by_id(observed, dead.headers["x-request-id"])
    assert (line["status"], line["outcome"]) == (dead.status_code, "upstream_unavailable")

    embedded = httpx.post(
        observed.url + "/v1/embeddings",
        json={"model": "embed", "input": "hi"},
        headers={"Authorization": f"Bearer {key}"},
    )
    line = by_id(observed, embedded.headers["x-request-id"])
    assert (line["status"], line["deployment"], line["prompt_tokens"]) == (200, CHEAP, 3)

    health = httpx.get(observed.url + "/health/live")
    line = by_id(observed, health.headers["x-request-id"])
    assert (line["status"], line["path"]) == (200, "/health/live")

    admin = observed.admin("GET", "/admin/teams")
    assert by_id(observed, admin.headers["x-request-id"])["status"] == 200


def test_a_made_request_id_is_unique_per_request_and_returned_on_errors_too(
    observed: GatewayProcess,
) -> None:
    ids = {chat(observed, "sk-sg-nobody-" + "y" * 30).headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


@pytest.mark.parametrize(
    "bad",
    ["a" * 129, "has space", 'quote"d', "new\\nline", "{json}", "semi;colon", "ümlaut"],
)
def test_an_unsafe_request_id_is_refused_with_a_clear_error_and_a_fresh_id(
    observed: GatewayProcess, bad: str
) -> None:
    response = httpx.post(
        observed.url + "/v1/chat/completions",
        json={"model": "gpt", "messages": []},
        headers={b"x-request-id": bad.encode("utf-8")},
    )
    assert response.status_code == 400
    assert "x-request-id" in response.json()["error"]["message"]
    made = response.headers["x-request-id"]
    assert made != bad and len(made) == 32
    assert by_id(observed, made)["status"] == 400
    assert bad not in observed.stderr()


def test_the_access_log_holds_no_key_and_no_content(
    observed: GatewayProcess, upstream: FakeUpstream
) -> None:
    key = observed.create_key(["gpt"])["key"]
    assert chat(observed, key, messages=[{"role": "user", "content": SECRET_WORDS}]).is_success
    chat(observed, key[:-2] + "zz")  # a wrong key: the log must not hold it either
    lines = [str(e) for e in access_lines(observed)]
    assert lines
    for line in lines:
        assert key not in line and key[:-2] not in line
        assert PROVIDER_KEY not in line and SECRET_WORDS not in line
        assert FakeUpstream.REPLY_TEXT not in line


def test_the_access_log_can_be_turned_off(upstream: FakeUpstream, tmp_path: Any) -> None:
    text = config(upstream, "logging: {access_log: false}\n")
    gateway = GatewayProcess(tmp_path, text, env={"OBSERVED_PROVIDER_KEY": PROVIDER_KEY}).start()
    try:
        key = gateway.create_key(["gpt"])["key"]
        answered = chat(gateway, key)
        assert answered.status_code == 200 and answered.headers["x-request-id"]
    finally:
        gateway.stop()  # every line it would write is written by now
    assert access_lines(gateway) == []
    assert "virtual key created" in gateway.stderr()  # other lines still come


def test_the_access_log_is_written_when_the_log_level_is_warning(
    upstream: FakeUpstream, tmp_path: Any
) -> None:
    text = config(upstream, "logging: {level: warning}\n")
    gateway = GatewayProcess(tmp_path, text, env={"OBSERVED_PROVIDER_KEY": PROVIDER_KEY}).start()
    try:
        key = gateway.create_key(["gpt"])["key"]
        answered = chat(gateway, key)
        assert by_id(gateway, answered.headers["x-request-id"])["status"] == 200
    finally:
        gateway.stop()
    assert "virtual key created" not in gateway.stderr()  # info lines of other loggers: held
