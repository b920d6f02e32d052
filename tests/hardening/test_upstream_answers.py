"""Issue 12: every upstream answer is bounded. A complete answer larger than its deployment's
``max_response_bytes`` is a 502 ``upstream_response_too_large``, found out without reading more
than the cap; a stream longer than ``max_stream_bytes`` ends with that error event; an SSE event
larger than ``max_event_bytes`` (a stream that never sends a blank line) ends the stream with
``upstream_event_too_large`` at once, and parsing stays linear meanwhile. What was used is still
charged and recorded."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hardening.conftest import CANARY_KEY, HI, post, spend_of, sse_events, start
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

MIB = 1024 * 1024
CAPS = """
    max_response_bytes: 1048576
    max_stream_bytes: 2097152
    max_event_bytes: 65536"""
CONFIG = f"""
deployments:
  - model: capped-gpt
    provider: openai_compatible
    base_url: {{upstream}}/v1
    credential: env:CANARY_PROVIDER_KEY
    allow_private_network: true
    timeouts: {{{{connect: 2, read: 10, total: 60}}}}{CAPS}
  - model: capped-claude
    provider: anthropic
    upstream_model: claude-sonnet-4-20250514
    base_url: {{upstream}}
    credential: env:CANARY_PROVIDER_KEY
    allow_private_network: true
    timeouts: {{{{connect: 2, read: 10, total: 60}}}}{CAPS}
  - model: default-gpt
    provider: openai_compatible
    base_url: {{upstream}}/v1
    credential: env:CANARY_PROVIDER_KEY
    allow_private_network: true
    timeouts: {{{{connect: 2, read: 10, total: 60}}}}
router:
  retries: 0
verify:
  mode: "off"
governance:
  deployments:
    capped-gpt/openai_compatible: {{{{prices: {{{{input: "1", output: "2"}}}}}}}}
    default-gpt/openai_compatible: {{{{prices: {{{{input: "1", output: "2"}}}}}}}}
"""
MODELS = ["capped-gpt", "capped-claude", "default-gpt"]


@pytest.fixture(scope="module")
def capped(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir: Path = tmp_path_factory.mktemp("capped")
    process = start(workdir, CONFIG.format(upstream=upstream_server.base_url))
    yield process
    process.stop()


def eventually(check: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def fresh_key(gateway: GatewayProcess) -> tuple[str, str]:
    made = gateway.create_key(MODELS)
    return made["key"], made["id"]


def body_for(model: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [HI], "max_tokens": 50}
    if stream:
        body["stream"] = True
    return body


def last_error(text: str) -> dict[str, Any]:
    """The error event that ends an SSE body (either API's shape)."""
    events = [(e, d) for e, d in sse_events(text) if d and d != "[DONE]"]
    assert events, text[:300]
    event, data = events[-1]
    payload: dict[str, Any] = json.loads(data)
    assert event == "error" or "error" in payload, text[-300:]
    return payload


def error_code(payload: dict[str, Any]) -> str:
    error = payload["error"]
    return str(error.get("code") or error.get("type"))


@pytest.mark.parametrize("model", ["capped-gpt", "capped-claude"])
@pytest.mark.parametrize("announced", [True, False])
def test_an_answer_larger_than_the_cap_is_a_502_and_is_still_charged(
    capped: GatewayProcess, upstream: FakeUpstream, model: str, announced: bool
) -> None:
    key, key_id = fresh_key(capped)
    upstream.then(body_bytes=64 * MIB, announce_length=announced)
    response = post(capped, "/v1/chat/completions", body_for(model, False), key)
    assert response.status_code == 502, response.text[:300]
    assert response.json()["error"]["code"] == "upstream_response_too_large"
    assert eventually(lambda: upstream.disconnects >= 1)  # it stopped reading at the cap
    row = spend_of(capped, key_id, 1)
    assert row["requests"] == 1
    assert row["completion_tokens"] > 0 and row["cost_nanos"] > 0


def test_an_answer_larger_than_the_cap_on_the_messages_api_is_a_502_in_its_shape(
    capped: GatewayProcess, upstream: FakeUpstream
) -> None:
    key, _ = fresh_key(capped)
    upstream.then(body_bytes=8 * MIB)
    response = post(capped, "/v1/messages", body_for("capped-gpt", False), key)
    assert response.status_code == 502
    assert response.json() == {
        "type": "error",
        "error": {"type": "api_error", "message": response.json()["error"]["message"]},
    }


def test_an_error_body_larger_than_the_cap_is_not_read_whole(
    capped: GatewayProcess, upstream: FakeUpstream
) -> None:
    key, _ = fresh_key(capped)
    upstream.then(status=400, body_bytes=64 * MIB)
    response = post(capped, "/v1/chat/completions", body_for("capped-gpt", False), key)
    assert response.status_code == 400
    assert CANARY_KEY not in response.text
    assert eventually(lambda: upstream.disconnects >= 1)


def test_an_answer_larger_than_the_default_cap_is_refused_before_it_is_read(
    capped: GatewayProcess, upstream: FakeUpstream
) -> None:
    key, _ = fresh_key(capped)
    upstream.then(body_bytes=80 * MIB)
    response = post(capped, "/v1/chat/completions", body_for("default-gpt", False), key)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_response_too_large"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
@pytest.mark.parametrize("model", ["capped-gpt", "capped-claude"])
def test_a_stream_longer_than_the_cap_ends_with_an_error_event_and_is_charged_what_it_sent(
    capped: GatewayProcess, upstream: FakeUpstream, path: str, model: str
) -> None:
    key, key_id = fresh_key(capped)
    upstream.then(stream_bytes=16 * MIB)
    response = post(capped, path, body_for(model, True), key)
    assert response.status_code == 200
    assert error_code(last_error(response.text)) in ("upstream_response_too_large", "api_error")
    assert len(response.content) < 4 * MIB
    row = spend_of(capped, key_id, 1)
    assert row["requests"] == 1
    assert row["completion_tokens"] >= 1000  # about one per 1000-byte delta that went out
    assert row["cost_nanos"] > 0


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
@pytest.mark.parametrize("model", ["capped-gpt", "capped-claude", "default-gpt"])
def test_a_stream_without_blank_lines_ends_at_the_event_size_limit_while_health_answers(
    capped: GatewayProcess, upstream: FakeUpstream, path: str, model: str
) -> None:
    key, _ = fresh_key(capped)
    upstream.then(unframed_bytes=24 * MIB)
    health: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=capped.url, timeout=5) as client:
            while not done.is_set():
                began = time.perf_counter()
                assert client.get("/health/live").status_code == 200
                health.append(time.perf_counter() - began)
                time.sleep(0.01)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    assert eventually(lambda: len(health) > 0)
    try:
        response = post(capped, path, body_for(model, True), key)
    finally:
        done.set()
        prober.join(10)
    assert response.status_code == 200
    payload = last_error(response.text)
    assert error_code(payload) in ("upstream_event_too_large", "api_error")
    assert "event" in json.dumps(payload)
    assert health and max(health) < 5  # health answered all along (it did not stall for good)
