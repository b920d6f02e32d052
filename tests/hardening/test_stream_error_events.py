"""Issue 12, leak 2: an error event in the middle of an upstream stream that echoes the provider
key. Error events in streams are read like error bodies, for every provider and on both APIs: the
client gets the gateway's own error event (the gateway's wording, a code only from the known
ones), never the upstream's bytes; the upstream's text goes to the log, scrubbed."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.hardening.conftest import (
    CANARY_KEY,
    HI,
    files_under,
    new_key,
    post,
    spend_of,
    sse_events,
)
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

MESSAGES = [
    f"Incorrect API key provided: {CANARY_KEY}. You can find your API key at ...",
    f"{CANARY_KEY}",
    f"invalid x-api-key {CANARY_KEY[:24]}",
    f"key={CANARY_KEY}&org=acme",
]
ROUTES = [
    ("/v1/chat/completions", "fake-gpt"),
    ("/v1/chat/completions", "fake-claude"),
    ("/v1/messages", "fake-gpt"),
    ("/v1/messages", "fake-claude"),
]


def streamed(path: str, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [HI], "stream": True}
    if path == "/v1/messages":
        body["max_tokens"] = 16
    return body


def error_events(text: str) -> list[dict[str, Any]]:
    """The error events of an SSE body, in either API's shape."""
    found = []
    for event, data in sse_events(text):
        if data in ("", "[DONE]"):
            continue
        payload = json.loads(data)
        if event == "error" or (isinstance(payload, dict) and "error" in payload):
            found.append(payload)
    return found


@pytest.mark.parametrize(("path", "model"), ROUTES)
@pytest.mark.parametrize("message", MESSAGES)
def test_a_mid_stream_error_event_that_echoes_the_key_reaches_the_client_scrubbed(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream, path: str, model: str, message: str
) -> None:
    upstream.then(stream_error=message)
    response = post(gateway, path, streamed(path, model), key)
    assert response.status_code == 200
    assert CANARY_KEY not in response.text
    assert CANARY_KEY[-16:] not in response.text
    assert CANARY_KEY[:24] not in response.text
    errors = error_events(response.text)
    assert len(errors) == 1
    if path == "/v1/messages":
        assert errors[0]["type"] == "error"
        assert errors[0]["error"]["type"] == "api_error"
    else:  # the gateway's own code, or one the format documents (the fake says server_error)
        assert errors[0]["error"]["code"] in ("upstream_error", "server_error", "overloaded_error")


@pytest.mark.parametrize(("path", "model"), ROUTES)
def test_a_mid_stream_error_code_that_carries_the_key_is_not_passed_on(
    gateway: GatewayProcess, upstream: FakeUpstream, path: str, model: str
) -> None:
    key, key_id = new_key(gateway)
    upstream.then(stream_error="something broke", error_code=CANARY_KEY)
    response = post(gateway, path, streamed(path, model), key)
    assert response.status_code == 200
    assert CANARY_KEY not in response.text
    assert len(error_events(response.text)) == 1
    assert spend_of(gateway, key_id, 1)["requests"] == 1
    assert CANARY_KEY not in gateway.admin("GET", "/metrics").text
    for content in files_under(gateway.data_dir).values():
        assert CANARY_KEY.encode() not in content


def test_the_openai_sdk_raises_on_the_scrubbed_error_event(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    upstream.then(stream_error=MESSAGES[0])
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as client:
        stream = client.chat.completions.create(model="fake-gpt", messages=[HI], stream=True)
        with pytest.raises(openai.APIError) as raised:
            for _ in stream:
                pass
    assert CANARY_KEY not in str(raised.value)
    assert "fake-gpt/openai_compatible" in str(raised.value)
    assert CANARY_KEY not in gateway.stderr()
