"""Issue 12, leak 1: an upstream error's ``code`` (Anthropic: ``error.type``) that carries the
provider key. The gateway takes codes from an upstream only from a list of known values, so the
key reaches no answer, no metric label, no spend row (SQLite, its WAL, PostgreSQL) and no log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.hardening.conftest import (
    CANARY_KEY,
    HI,
    config,
    files_under,
    new_key,
    post,
    spend_of,
    start,
)
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

# Where an upstream's error code can come back: each route, streamed or not, each wire format,
# and every status whose message and code the gateway passes on.
CASES = [
    ("/v1/chat/completions", "fake-gpt", False, 400),
    ("/v1/chat/completions", "fake-gpt", True, 400),
    ("/v1/chat/completions", "fake-gpt", False, 404),
    ("/v1/chat/completions", "fake-gpt", False, 409),
    ("/v1/chat/completions", "fake-gpt", False, 413),
    ("/v1/chat/completions", "fake-gpt", False, 415),
    ("/v1/chat/completions", "fake-gpt", False, 422),
    ("/v1/chat/completions", "fake-gpt", False, 418),
    ("/v1/chat/completions", "fake-gpt", False, 429),
    ("/v1/chat/completions", "fake-gpt", False, 500),
    ("/v1/embeddings", "fake-gpt", False, 400),
    ("/v1/chat/completions", "fake-claude", False, 400),
    ("/v1/chat/completions", "fake-claude", True, 400),
    ("/v1/chat/completions", "fake-claude", False, 422),
    ("/v1/messages", "fake-gpt", False, 400),
    ("/v1/messages", "fake-gpt", True, 400),
    ("/v1/messages", "fake-claude", False, 400),
    ("/v1/messages", "fake-claude", True, 404),
]
# The same key dressed as codes an upstream might send: alone, inside a longer code, short
# enough for any length check, and with the characters a label or a row would need escaped.
CODES = [
    CANARY_KEY,
    f"invalid_api_key:{CANARY_KEY}",
    CANARY_KEY[:40],
    f'{CANARY_KEY}"}}\n',
]


def request_for(path: str, model: str, stream: bool) -> dict[str, Any]:
    if path == "/v1/embeddings":
        return {"model": model, "input": "hi"}
    body: dict[str, Any] = {"model": model, "messages": [HI]}
    if path == "/v1/messages":
        body["max_tokens"] = 16
    if stream:
        body["stream"] = True
    return body


def send_each_case(gateway: GatewayProcess, upstream: FakeUpstream, key: str) -> list[str]:
    """Every case with every code; what the client saw, headers included."""
    seen = []
    for path, model, stream, status in CASES:
        for code in CODES:
            upstream.then(status=status, error_code=code, error_message="upstream says no")
            response = post(gateway, path, request_for(path, model, stream), key)
            assert response.status_code in (400, 404, 409, 413, 415, 422, 429, 502), response.text
            seen += [response.text, str(response.headers)]
    return seen


def canary_in(texts: list[str] | list[bytes]) -> list[str]:
    leaks = []
    for item in texts:
        found = item if isinstance(item, str) else item.decode("latin-1")
        for needle in (CANARY_KEY, CANARY_KEY[-16:]):
            if needle in found:
                at = found.index(needle)
                leaks.append(found[max(0, at - 80) : at + 40])
    return leaks


def test_an_upstream_error_code_is_passed_on_only_when_it_is_a_known_one(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    body = request_for("/v1/chat/completions", "fake-gpt", False)
    upstream.then(status=400, error_code="context_length_exceeded", error_message="too long")
    known = post(gateway, "/v1/chat/completions", body, key)
    assert known.status_code == 400
    assert known.json()["error"]["code"] == "context_length_exceeded"
    upstream.then(status=400, error_code="made_up_code", error_message="no")
    unknown = post(gateway, "/v1/chat/completions", body, key)
    assert unknown.status_code == 400
    # The made-up code is dropped; the recorded error's type (invalid_request_error, a known
    # value) stands in for it, as http.error_message takes the code or else the type.
    assert unknown.json()["error"]["code"] == "invalid_request_error"


def test_a_provider_key_in_an_upstream_error_code_reaches_no_answer_metric_spend_row_or_log(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    key, key_id = new_key(gateway)
    seen = send_each_case(gateway, upstream, key)
    assert spend_of(gateway, key_id, len(CASES) * len(CODES))["requests"] == len(CASES) * len(CODES)
    database = files_under(gateway.data_dir)  # while it runs: the SQLite file and its WAL
    assert any(p.name.endswith("-wal") for p in database)
    metrics = gateway.admin("GET", "/metrics").text
    assert "sealgate_upstream_failures_total" in metrics
    assert canary_in(seen) == []
    assert canary_in([metrics]) == []
    assert canary_in(list(database.values())) == []
    assert canary_in([gateway.stderr()]) == []


@pytest.fixture
def postgres_gateway(
    upstream_server: FakeUpstream, tmp_path: Path, postgres_database: Callable[[], str]
) -> Iterator[tuple[GatewayProcess, str]]:
    url = postgres_database()
    process = start(tmp_path / "pg", config(upstream_server, f"storage:\n  url: {url}\n"))
    yield process, url
    process.stop()


@pytest.mark.postgres
def test_a_provider_key_in_an_upstream_error_code_is_never_a_spend_status_in_postgresql(
    postgres_gateway: tuple[GatewayProcess, str], upstream: FakeUpstream
) -> None:
    gateway, url = postgres_gateway
    key, key_id = new_key(gateway)
    seen = send_each_case(gateway, upstream, key)
    sent = len(CASES) * len(CODES)
    assert spend_of(gateway, key_id, sent)["requests"] == sent
    engine = create_engine("postgresql+psycopg://" + url.removeprefix("postgresql://"))
    try:
        with engine.connect() as connection:
            statuses = [row[0] for row in connection.execute(text("SELECT status FROM spend"))]
            rows = connection.execute(text("SELECT string_agg(spend::text, '|') FROM spend"))
            everything = rows.scalar_one()
    finally:
        engine.dispose()
    assert len(statuses) == sent
    assert canary_in(seen) == []
    assert canary_in(statuses) == []
    assert canary_in([everything]) == []
    assert canary_in([gateway.admin("GET", "/metrics").text, gateway.stderr()]) == []
