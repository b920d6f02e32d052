"""Limits, budgets and spend through a real gateway process, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import select

from gateway.store.db import default_url, make_engine
from gateway.store.tables import spend
from tests.governance import gateways
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess


@pytest.fixture
def gateway(
    upstream: FakeUpstream, tmp_path: Path, storage_url: str | None
) -> Iterator[GatewayProcess]:
    with gateways.running(tmp_path, gateways.config(upstream, storage_url=storage_url)) as process:
        yield process


def test_spend_totals_equal_the_usage_the_upstream_reported(gateway: GatewayProcess) -> None:
    team = gateway.admin("POST", "/admin/teams", json={"name": "payments"}).json()
    key = gateway.create_key([gateways.MODEL], team_id=team["id"], metadata={"project": "checkout"})
    statuses = gateways.hammer([gateway], key["key"], 40, workers=8)
    assert statuses == [200] * 40
    body = gateways.wait_for_requests(gateway, 40)
    totals = body["totals"]
    assert totals["requests"] == 40
    assert totals["prompt_tokens"] + totals["completion_tokens"] == 40 * gateways.USAGE_TOKENS
    assert totals["cost_nanos"] == 40 * gateways.COST_NANOS
    assert totals["cost_usd"] == "1.000000000"
    by_team = gateways.report(gateway, "team")["data"]
    assert by_team == [{"team": team["id"], **{k: totals[k] for k in totals}}]
    assert gateways.report(gateway, "project")["data"][0]["project"] == "checkout"
    assert gateways.report(gateway, "model")["data"][0]["model"] == gateways.MODEL
    assert len(gateways.report(gateway, "day")["data"]) == 1


def test_a_full_key_limit_is_a_429_the_openai_sdk_understands(gateway: GatewayProcess) -> None:
    gateways.wait_for_window(10)
    key = gateway.create_key([gateways.MODEL], rpm_limit=2)["key"]
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as client:
        for _ in range(2):
            client.chat.completions.create(**gateways.BODY)  # type: ignore[call-overload]
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(**gateways.BODY)  # type: ignore[call-overload]
    headers = refused.value.response.headers
    assert int(headers["retry-after"]) >= 1
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.value.code == "rate_limit_exceeded"


def test_a_hard_budget_blocks_and_the_report_shows_it(gateway: GatewayProcess) -> None:
    key = gateway.create_key([gateways.MODEL])
    made = gateway.admin(
        "POST",
        "/admin/budgets",
        json={
            "scope": "key",
            "scope_id": key["id"],
            "period": "monthly",
            "max_usd": "0.1",
            "soft_usd": "0.05",
        },
    )
    assert made.status_code == 201, made.text
    statuses = [gateways.chat(gateway, key["key"]).status_code for _ in range(6)]
    # $0.025 a call, $0.033 reserved: the fourth would pass $0.10 at the reservation.
    assert statuses == [200, 200, 200, 429, 429, 429]
    refused = gateways.chat(gateway, key["key"])
    assert refused.json()["error"]["code"] == "budget_exceeded"
    gateways.wait_for_requests(gateway, 3)
    budget = gateway.admin("GET", "/admin/budgets").json()["data"][0]
    assert budget["spent_usd"] == "0.075000000"
    assert budget["soft_exceeded"] and not budget["hard_exceeded"]
    assert "budget soft threshold reached" in gateway.stderr()


def test_a_stream_without_usage_is_recorded_from_counted_tokens(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    upstream.default.include_usage = False
    key = gateway.create_key([gateways.MODEL])
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json={**gateways.BODY, "stream": True},
        headers={"Authorization": f"Bearer {key['key']}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    assert text.rstrip().endswith("data: [DONE]")
    body = gateways.wait_for_requests(gateway, 1)
    row = body["data"][0]
    assert row["prompt_tokens"] == 13  # the estimate
    assert row["completion_tokens"] == 7  # one per delta event: role, 5 words, stop


def test_a_stream_that_ends_before_done_is_an_error_event_and_recorded_truncated(
    gateway: GatewayProcess, upstream: FakeUpstream, storage_url: str | None
) -> None:
    # Issue 13.3: a stream that ended cleanly before [DONE], without usage, was passed on as
    # complete and recorded ok.
    upstream.default.include_usage = False
    upstream.then(end_after=3)  # the role event and two words, then a clean end
    key = gateway.create_key([gateways.MODEL])
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json={**gateways.BODY, "stream": True},
        headers={"Authorization": f"Bearer {key['key']}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    assert "data: [DONE]" not in text
    error = text.rstrip().rsplit("\n", 1)[-1]
    assert text.rstrip().splitlines()[-2] == "event: error"
    assert json.loads(error.removeprefix("data: "))["error"]["code"] == "upstream_truncated"
    totals = gateways.wait_for_requests(gateway, 1)["totals"]
    # Charged what was counted: the prompt estimate, one completion token per delta event.
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (13, 3)
    assert totals["cost_nanos"] == 13 * 1_000_000 + 3 * 2_000_000
    assert spend_statuses(gateway, storage_url) == ["upstream_truncated"]


def spend_statuses(gateway: GatewayProcess, storage_url: str | None) -> list[str]:
    engine = make_engine(storage_url or default_url(gateway.data_dir))
    try:
        with engine.connect() as connection:
            return [row[0] for row in connection.execute(select(spend.c.status))]
    finally:
        engine.dispose()


def test_a_request_header_attributes_spend_to_a_project_and_tags(
    gateway: GatewayProcess,
) -> None:
    key = gateway.create_key([gateways.MODEL])["key"]
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        json=gateways.BODY,
        headers={
            "Authorization": f"Bearer {key}",
            "X-Sealgate-Project": "search",
            "X-Sealgate-Tags": "batch,nightly",
        },
        timeout=30,
    )
    assert response.status_code == 200
    gateways.wait_for_requests(gateway, 1)
    assert gateways.report(gateway, "project")["data"][0]["project"] == "search"


def test_the_outbox_file_and_the_database_never_hold_a_key(gateway: GatewayProcess) -> None:
    key = gateway.create_key([gateways.MODEL])["key"]
    assert gateways.chat(gateway, key).status_code == 200
    gateways.wait_for_requests(gateway, 1)
    for path in gateway.data_dir.iterdir():
        assert key.encode() not in path.read_bytes(), path
    assert key not in json.dumps(gateways.report(gateway))
