"""The OpenAI-compatible API, driven by the official ``openai`` SDK over real HTTP on loopback,
against a running gateway process and a fake upstream speaking OpenAI's wire format."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import openai
import pytest

from tests.gateway.conftest import PROVIDER_KEY
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

OPENED: list[openai.OpenAI] = []


def client(gateway: GatewayProcess, key: str, **kwargs: object) -> openai.OpenAI:
    made = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, **kwargs)  # type: ignore[arg-type]
    OPENED.append(made)
    return made


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    """Each test's SDK clients are closed after it: an unclosed one leaves its sockets to the
    garbage collector, whose ResourceWarning then fails whichever later test it lands in."""
    yield
    while OPENED:
        OPENED.pop().close()


@pytest.fixture(scope="module")
def key(gateway: GatewayProcess) -> str:
    return str(gateway.create_key(["fake-gpt", "azure-gpt", "dead-gpt", "mock-gpt"])["key"])


def test_chat_completion_reaches_the_upstream_with_its_own_model_and_key(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    reply = client(gateway, key).chat.completions.create(
        model="fake-gpt",
        messages=[{"role": "user", "content": "hi"}],
        temperature=0.2,
        max_tokens=50,
        stop=["\n"],
        seed=7,
    )
    assert reply.choices[0].message.content == FakeUpstream.REPLY_TEXT
    assert reply.usage is not None and reply.usage.total_tokens == 18
    seen = upstream.requests[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.body["model"] == "upstream-gpt"
    assert seen.body["temperature"] == 0.2 and seen.body["stop"] == ["\n"]
    assert seen.headers["Authorization"] == f"Bearer {PROVIDER_KEY}"
    assert key not in json.dumps(seen.headers)  # the client's virtual key never goes upstream


def test_image_content_parts_and_response_format_pass_through(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    client(gateway, key).chat.completions.create(
        model="fake-gpt",
        messages=[{"role": "user", "content": content}],  # type: ignore[list-item]
        response_format={"type": "json_object"},
        n=2,
        max_completion_tokens=20,
    )
    body = upstream.requests[-1].body
    assert body["messages"][0]["content"] == content
    assert body["response_format"] == {"type": "json_object"}
    assert body["n"] == 2 and body["max_completion_tokens"] == 20


def test_streaming_passes_chunks_through_and_ends_with_usage(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    stream = client(gateway, key).chat.completions.create(
        model="fake-gpt",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text.split() == FakeUpstream.REPLY_TEXT.split()
    assert usage is not None and usage.prompt_tokens == 11 and usage.completion_tokens == 7


def test_tool_call_round_trip(gateway: GatewayProcess, key: str, upstream: FakeUpstream) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    sdk = client(gateway, key)
    messages: list[dict[str, object]] = [{"role": "user", "content": "weather in Paris?"}]
    first = sdk.chat.completions.create(
        model="fake-gpt",
        messages=messages,  # type: ignore[arg-type]
        tools=tools,  # type: ignore[arg-type]
        tool_choice="auto",
    )
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = sdk.chat.completions.create(
        model="fake-gpt",
        messages=messages,  # type: ignore[arg-type]
        tools=tools,  # type: ignore[arg-type]
    )
    assert second.choices[0].message.content == "The tool said: sunny"
    assert upstream.requests[-1].body["messages"][-1]["tool_call_id"] == call.id


def test_embeddings_are_forwarded(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    reply = client(gateway, key).embeddings.create(model="fake-gpt", input=["a", "b"])
    assert [d.embedding for d in reply.data] == [[0.1, 0.2, 0.3]] * 2
    assert upstream.requests[-1].path == "/v1/embeddings"


def test_azure_deployment_uses_deployment_url_api_version_and_api_key_header(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    client(gateway, key).chat.completions.create(
        model="azure-gpt", messages=[{"role": "user", "content": "hi"}]
    )
    seen = upstream.requests[-1]
    assert seen.path == "/openai/deployments/my-azure-deployment/chat/completions"
    assert seen.query == {"api-version": "2024-10-21"}
    assert seen.headers["api-key"] == PROVIDER_KEY
    assert "Authorization" not in seen.headers
    assert "model" not in seen.body


def test_models_lists_only_the_models_the_key_may_use(gateway: GatewayProcess) -> None:
    narrow = gateway.create_key(["mock-gpt"])["key"]
    assert [m.id for m in client(gateway, narrow).models.list()] == ["mock-gpt"]


def test_mock_model_answers_deterministically(gateway: GatewayProcess, key: str) -> None:
    sdk = client(gateway, key)
    answers = {
        sdk.chat.completions.create(
            model="mock-gpt", messages=[{"role": "user", "content": "same words"}]
        )
        .choices[0]
        .message.content
        for _ in range(2)
    }
    assert answers == {"Mock answer from Sealgate to: same words"}


# -- errors: one per status ----------------------------------------------------------------


def post(
    gateway: GatewayProcess, key: str | None, body: object, **kwargs: object
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        content=content,
        headers={"Content-Type": "application/json", **headers},
        **{"timeout": 15, **kwargs},  # type: ignore[arg-type]
    )


def error_of(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in response.text
    return dict(body["error"])


HI = {"role": "user", "content": "hi"}


def test_invalid_json_is_400(gateway: GatewayProcess, key: str) -> None:
    response = post(gateway, key, b"{not json")
    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_request_error"


def test_unknown_parameter_is_400_naming_it(gateway: GatewayProcess, key: str) -> None:
    response = post(gateway, key, {"model": "fake-gpt", "messages": [HI], "temprature": 1})
    assert response.status_code == 400
    assert error_of(response)["param"] == "temprature"


@pytest.mark.parametrize(
    "field",
    ["api_base", "base_url", "api_key", "extra_headers", "api_version", "custom_llm_provider"],
)
def test_fields_that_would_steer_the_upstream_are_refused(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream, field: str
) -> None:
    value: object = {"X-Evil": "1"} if field == "extra_headers" else "http://169.254.169.254/"
    response = post(gateway, key, {"model": "fake-gpt", "messages": [HI], field: value})
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == field and error["code"] == "forbidden_parameter"
    assert upstream.requests == []


def test_missing_key_is_401(gateway: GatewayProcess) -> None:
    response = post(gateway, None, {"model": "fake-gpt", "messages": [HI]})
    assert response.status_code == 401
    assert error_of(response)["type"] == "authentication_error"


def test_invalid_key_is_401_and_not_echoed(gateway: GatewayProcess, key: str) -> None:
    forged = key[:-4] + "AAAA"
    response = post(gateway, forged, {"model": "fake-gpt", "messages": [HI]})
    assert response.status_code == 401
    assert forged not in response.text


def test_model_outside_the_keys_scope_is_403(gateway: GatewayProcess) -> None:
    narrow = gateway.create_key(["mock-gpt"])["key"]
    response = post(gateway, narrow, {"model": "fake-gpt", "messages": [HI]})
    assert response.status_code == 403
    assert error_of(response)["type"] == "permission_error"


def test_unknown_model_is_404_and_never_becomes_an_address(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    for model in ["nope", "openai/http://169.254.169.254/", "http://127.0.0.1:1/v1"]:
        response = post(gateway, key, {"model": model, "messages": [HI]})
        assert response.status_code == 404
        assert error_of(response)["code"] == "model_not_found"
    assert upstream.requests == []


def test_body_over_the_cap_is_413(gateway: GatewayProcess, key: str) -> None:
    big = {"model": "fake-gpt", "messages": [{"role": "user", "content": "x" * 70_000}]}
    response = post(gateway, key, big)
    assert response.status_code == 413
    assert error_of(response)["code"] == "request_too_large"


def test_chunked_body_over_the_cap_is_413(gateway: GatewayProcess, key: str) -> None:
    def chunks() -> object:
        yield b'{"model": "fake-gpt", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"x" * 5000
        yield b'"}]}'

    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        content=chunks(),  # type: ignore[arg-type]
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=15,
    )
    assert response.status_code == 413


def test_upstream_429_is_429_with_retry_after(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    upstream.then(status=429, headers={"Retry-After": "7"})
    response = post(gateway, key, {"model": "fake-gpt", "messages": [HI]})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert error_of(response)["type"] == "rate_limit_error"


def test_upstream_500_is_502_without_upstream_detail(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    upstream.then(status=500, error_message="internal: db password hunter2 at 10.0.0.5")
    response = post(gateway, key, {"model": "fake-gpt", "messages": [HI]})
    assert response.status_code == 502
    assert "hunter2" not in response.text and "10.0.0.5" not in response.text


def test_upstream_400_message_is_passed_on_scrubbed(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    upstream.then(status=400, error_message=f"bad temperature; key was {PROVIDER_KEY}")
    response = post(gateway, key, {"model": "fake-gpt", "messages": [HI]})
    assert response.status_code == 400
    message = str(error_of(response)["message"])
    assert "bad temperature" in message
    assert PROVIDER_KEY not in response.text


def test_upstream_401_is_502_and_never_shows_the_providers_message(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    upstream.default.status = 401
    upstream.default.error_message = f"Incorrect API key provided: {PROVIDER_KEY[:8]}***"
    response = post(gateway, key, {"model": "fake-gpt", "messages": [HI]})
    assert response.status_code == 502
    assert PROVIDER_KEY[:8] not in response.text
    assert len(upstream.requests) == 2  # the credential is refetched and tried once more


def test_unreachable_upstream_is_503(gateway: GatewayProcess, key: str) -> None:
    response = post(gateway, key, {"model": "dead-gpt", "messages": [HI]})
    assert response.status_code == 503
    assert error_of(response)["code"] == "upstream_unavailable"


def test_slow_upstream_is_504(gateway: GatewayProcess, key: str, upstream: FakeUpstream) -> None:
    upstream.then(delay=3.0)
    response = post(gateway, key, {"model": "fake-gpt", "messages": [HI]})
    assert response.status_code == 504
    assert error_of(response)["code"] == "upstream_timeout"


def test_the_fake_does_not_count_a_late_disconnect_of_a_request_from_before_its_reset(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    """The fake's own bookkeeping: the 504 above leaves the fake's handler sleeping past the
    gateway's timeout; when it wakes into a later test it must not count there (this made
    test_client_disconnect_mid_stream_cancels_the_upstream_request flaky under load)."""
    upstream.then(delay=2.5)
    assert post(gateway, key, {"model": "fake-gpt", "messages": [HI]}).status_code == 504
    upstream.reset()  # what the next test's fixture does
    time.sleep(1.0)  # the handler wakes, finds its client gone
    assert upstream.disconnects == 0


def test_upstream_redirect_is_not_followed(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    upstream.then(redirect_to=upstream.base_url + "/stolen")
    response = post(gateway, key, {"model": "fake-gpt", "messages": [HI]})
    assert response.status_code == 502
    assert [r.path for r in upstream.requests] == ["/v1/chat/completions"]


def test_stream_cut_by_the_upstream_ends_with_an_error_event(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    upstream.then(cut_after=2, chunk_delay=0.1)
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json={"model": "fake-gpt", "messages": [HI], "stream": True},
        headers={"Authorization": f"Bearer {key}"},
        timeout=15,
    ) as response:
        body = response.read().decode()
    assert response.status_code == 200
    assert body.count("data: {") == 3  # two chunks, then the error event
    assert "event: error" in body and "[DONE]" not in body


def test_client_disconnect_mid_stream_cancels_the_upstream_request(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    upstream.then(chunk_delay=0.3)
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json={"model": "fake-gpt", "messages": [HI], "stream": True},
        headers={"Authorization": f"Bearer {key}"},
        timeout=15,
    ) as response:
        first = next(response.iter_raw())
        assert first.startswith(b"data: ")
    deadline = time.monotonic() + 10
    while upstream.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.disconnects == 1
    assert upstream.completed_streams == 0


def test_client_disconnect_while_waiting_cancels_the_upstream_request(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    upstream.then(delay=1.0)
    with pytest.raises(httpx.ReadTimeout):
        post(gateway, key, {"model": "fake-gpt", "messages": [HI]}, timeout=0.3)
    deadline = time.monotonic() + 5
    while upstream.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.disconnects == 1


# -- virtual keys ---------------------------------------------------------------------------


def test_key_is_shown_once_and_listed_without_secret(gateway: GatewayProcess) -> None:
    created = gateway.create_key(["mock-gpt"], metadata={"team": "search"})
    assert created["key"].startswith("sk-sg-")
    listing = gateway.admin("GET", "/admin/keys")
    assert listing.status_code == 200
    assert created["key"] not in listing.text
    mine = [k for k in listing.json()["data"] if k["id"] == created["id"]]
    assert mine == [{**{k: v for k, v in created.items() if k != "key"}}]
    assert "key_hash" not in listing.text


def test_revoked_key_is_refused_at_once(gateway: GatewayProcess) -> None:
    created = gateway.create_key(["mock-gpt"])
    sdk = client(gateway, created["key"])
    sdk.chat.completions.create(model="mock-gpt", messages=[HI])  # type: ignore[list-item]
    assert gateway.admin("DELETE", f"/admin/keys/{created['id']}").status_code == 200
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        sdk.chat.completions.create(model="mock-gpt", messages=[HI])  # type: ignore[list-item]


def test_expired_key_is_refused(gateway: GatewayProcess) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1.5)
    created = gateway.create_key(["mock-gpt"], expires_at=soon.isoformat())
    sdk = client(gateway, created["key"])
    sdk.chat.completions.create(model="mock-gpt", messages=[HI])  # type: ignore[list-item]
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.1)
    with pytest.raises(openai.AuthenticationError, match="expired"):
        sdk.chat.completions.create(model="mock-gpt", messages=[HI])  # type: ignore[list-item]


def test_admin_api_refuses_without_the_admin_credential(gateway: GatewayProcess, key: str) -> None:
    for headers in [
        {},
        {"Authorization": f"Bearer {key}"},
        {"Authorization": "Bearer sga-wrong-0123456789abc"},
    ]:
        response = httpx.get(gateway.url + "/admin/keys", headers=headers, timeout=5)
        assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"models": []}, "models"),
        ({"models": ["no-such-model"]}, "models"),
        ({"models": ["mock-gpt"], "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"models": ["mock-gpt"], "colour": "red"}, "colour"),
    ],
)
def test_bad_key_requests_get_a_clear_error(
    gateway: GatewayProcess, body: dict[str, object], param: str
) -> None:
    response = gateway.admin("POST", "/admin/keys", json=body)
    assert response.status_code in (400, 404)
    assert param in str(error_of(response)["param"])


def test_revoking_an_unknown_key_is_404(gateway: GatewayProcess) -> None:
    assert gateway.admin("DELETE", "/admin/keys/0000000000000000").status_code == 404


def test_health_endpoints(gateway: GatewayProcess) -> None:
    assert httpx.get(gateway.url + "/health/live").json() == {"status": "ok"}
    ready = httpx.get(gateway.url + "/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_metrics_count_requests_by_status_for_the_admin_only(
    gateway: GatewayProcess, key: str
) -> None:
    assert (
        httpx.get(gateway.url + "/metrics", headers={"Authorization": f"Bearer {key}"}).status_code
        == 401
    )
    text = gateway.admin("GET", "/metrics").text
    assert 'sealgate_requests_total{route="/v1/chat/completions",status="200"}' in text
    assert 'sealgate_requests_total{route="/v1/chat/completions",status="401"}' in text
    assert (
        'sealgate_upstream_failures_total{deployment="dead-gpt/openai_compatible",code="upstream_unavailable"}'
        in text
    )
    assert key not in text and PROVIDER_KEY not in text


def test_no_key_reaches_the_logs(gateway: GatewayProcess, key: str) -> None:
    """Runs last in this module: by now every test above has sent traffic through this process."""
    post(gateway, key[:-1] + "Z", {"model": "fake-gpt", "messages": [HI]})
    log = gateway.stderr()
    assert "virtual key created" in log  # the log was captured at all
    assert key not in log
    assert PROVIDER_KEY not in log
    assert gateway.admin_key not in log
    assert key[len("sk-sg-") + 17 :] not in log  # not even the secret half


def test_json_answers_and_errors_are_framed_by_content_length_not_chunked(
    gateway: GatewayProcess, key: str
) -> None:
    answered = post(gateway, key, {"model": "fake-gpt", "messages": [HI]})
    refused = post(gateway, key, b"{not json")
    for response, status in ((answered, 200), (refused, 400)):
        assert response.status_code == status
        assert "transfer-encoding" not in response.headers
        assert response.headers["content-length"] == str(len(response.content))
