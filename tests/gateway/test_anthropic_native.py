"""Anthropic Messages served faithfully (issue 14, item 3), driven by the official ``anthropic``
SDK over real HTTP through a running gateway: an Anthropic deployment gets the client's body
untranslated and its answer comes back as sent; an OpenAI-format deployment gets a translation,
with what it ignores named in ``x-sealgate-ignored`` and what it cannot serve refused by name.
The upstream is the fake (tests/support/fake_upstream.py) replaying recorded replies."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

ANTHROPIC_KEY = "sk-ant-fake-" + secrets.token_urlsafe(24)
OPENAI_KEY = "sk-fakeprovider-" + secrets.token_urlsafe(24)
TOOLS: Any = [{"name": "get_weather", "description": "weather", "input_schema": {"type": "object"}}]
WEB_SEARCH: Any = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
CLAUDE_CODE_BETAS = (
    "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
    "per-turn-control-2026-07-01,mid-conversation-tool-changes-2026-07-01,"
    "thinking-token-count-2026-05-13,advanced-tool-use-2025-11-20,effort-2025-11-24"
)
SIGNATURE = "EqQBCkYIARgCIkAfakeSignatureForTestsOnly0123456789abcdefghijklmnopqrstuvwxyzAB"


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    config = f"""
deployments:
  - model: claude
    provider: anthropic
    upstream_model: claude-sonnet-4-5
    base_url: {upstream_server.base_url}
    credential: env:FAKE_ANTHROPIC_KEY
    allow_private_network: true
  - model: claude-narrow
    provider: anthropic
    upstream_model: claude-sonnet-4-5
    base_url: {upstream_server.base_url}
    credential: env:FAKE_ANTHROPIC_KEY
    allow_private_network: true
    anthropic_beta: [interleaved-thinking-2025-05-14]
  - model: fake-gpt
    provider: openai_compatible
    upstream_model: upstream-gpt
    base_url: {upstream_server.base_url}/v1
    credential: env:FAKE_PROVIDER_KEY
    allow_private_network: true
router:
  retries: 0
verify:
  mode: "off"
governance:
  default_prices: {{input: "0"}}
"""
    workdir: Path = tmp_path_factory.mktemp("anthropic-native")
    env = {"FAKE_ANTHROPIC_KEY": ANTHROPIC_KEY, "FAKE_PROVIDER_KEY": OPENAI_KEY}
    process = GatewayProcess(workdir, config, env=env).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def key(gateway: GatewayProcess) -> str:
    return str(gateway.create_key(["claude", "claude-narrow", "fake-gpt"])["key"])


@pytest.fixture(scope="module")
def sdk(gateway: GatewayProcess, key: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as made:
        yield made


def _post(
    gateway: GatewayProcess, key: str, body: dict[str, Any], **headers: str
) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/messages",
        json=body,
        headers={"x-api-key": key, **headers},
        timeout=10,
    )


USER = [{"role": "user", "content": "hi"}]


def _drain(sdk: anthropic.Anthropic) -> None:
    with sdk.messages.stream(model="claude", max_tokens=64, messages=USER) as stream:
        for _ in stream:
            pass


# -- count_tokens -----------------------------------------------------------------------------
def test_count_tokens_on_an_anthropic_deployment_is_the_upstreams_count(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    counted = sdk.messages.count_tokens(
        model="claude", system="be brief", messages=USER, tools=TOOLS
    )
    assert counted.input_tokens == 23  # tests/assets/providers/anthropic/count_tokens.json
    seen = upstream.requests[-1]
    assert seen.path == "/v1/messages/count_tokens"
    assert seen.headers["x-api-key"] == ANTHROPIC_KEY
    assert seen.body["model"] == "claude-sonnet-4-5" and seen.body["tools"] == TOOLS


def test_count_tokens_on_a_translated_deployment_is_an_estimate_without_an_upstream_call(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    short = sdk.messages.count_tokens(model="fake-gpt", messages=USER)
    long = sdk.messages.count_tokens(
        model="fake-gpt", messages=[{"role": "user", "content": "many words here " * 50}]
    )
    assert 0 < short.input_tokens < long.input_tokens
    assert upstream.requests == []


def test_count_tokens_refuses_a_model_the_key_may_not_use(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    narrow = gateway.create_key(["fake-gpt"])["key"]
    with (
        anthropic.Anthropic(base_url=gateway.url, api_key=narrow, max_retries=0) as client,
        pytest.raises(anthropic.PermissionDeniedError),
    ):
        client.messages.count_tokens(model="claude", messages=USER)
    assert upstream.requests == []


# -- thinking ---------------------------------------------------------------------------------
def test_thinking_blocks_and_signatures_come_back_from_an_anthropic_deployment(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    message = sdk.messages.create(model="claude", max_tokens=2048, thinking=thinking, messages=USER)
    assert [b.type for b in message.content] == ["thinking", "text"]
    block = message.content[0]
    assert block.type == "thinking" and block.signature == SIGNATURE
    assert message.id == "msg_thinking"  # the upstream's id, no prefix added
    assert upstream.requests[-1].body["thinking"] == thinking


def test_streamed_thinking_keeps_deltas_signature_and_input_tokens(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    thinking: Any = {"type": "adaptive", "display": "summarized"}
    with sdk.messages.stream(
        model="claude", max_tokens=2048, thinking=thinking, messages=USER
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert "thinking" in kinds and "signature" in kinds
    assert final.content[0].type == "thinking"
    assert final.content[0].thinking == "The user greets me; a short greeting back fits."
    assert final.content[0].signature == SIGNATURE
    assert final.content[1].type == "text" and final.content[1].text == FakeUpstream.REPLY_TEXT
    assert (final.usage.input_tokens, final.usage.output_tokens) == (11, 7)
    assert final.usage.cache_read_input_tokens == 2
    assert upstream.requests[-1].body["thinking"] == thinking


def test_earlier_thinking_blocks_go_back_to_an_anthropic_deployment_unchanged(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    first = sdk.messages.create(
        model="claude", max_tokens=2048, thinking={"type": "adaptive"}, messages=USER
    )
    history: Any = [
        *USER,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": "and again"},
    ]
    sdk.messages.create(
        model="claude", max_tokens=2048, thinking={"type": "adaptive"}, messages=history
    )
    sent = upstream.requests[-1].body["messages"][1]["content"]
    assert sent[0]["type"] == "thinking" and sent[0]["signature"] == SIGNATURE


# -- cache_control, documents, the other fields current clients send ------------------------------
def test_cache_control_reaches_an_anthropic_upstream_where_the_client_put_it(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    ephemeral: Any = {"type": "ephemeral", "ttl": "1h"}
    system: Any = [{"type": "text", "text": "long context", "cache_control": ephemeral}]
    tools: Any = [{**TOOLS[0], "cache_control": {"type": "ephemeral"}}]
    messages: Any = [
        {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": ephemeral}]}
    ]
    sdk.messages.create(
        model="claude",
        max_tokens=64,
        system=system,
        tools=tools,
        messages=messages,
        cache_control={"type": "ephemeral"},
    )
    body = upstream.requests[-1].body
    assert body["system"] == system and body["tools"] == tools and body["messages"] == messages
    assert body["cache_control"] == {"type": "ephemeral"}


def test_a_claude_code_request_passes_through_whole(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    """The fields Claude Code 2.1.332 sends (recorded by tests/agents/test_claude_code.py),
    with a document block, top_k and a system-role message in the middle."""
    body: dict[str, Any] = {
        "model": "claude",
        "max_tokens": 32000,
        "stream": False,
        "system": [{"type": "text", "text": "You are Claude Code."}],
        "messages": [
            {"role": "user", "content": "read this"},
            {"role": "system", "content": "the user switched to plan mode"},
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVBER",
                        },
                        "title": "spec.pdf",
                    }
                ],
            },
        ],
        "thinking": {"type": "adaptive", "display": "omitted"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "medium"},
        "metadata": {"user_id": '{"device_id":"d","session_id":"s"}'},
        "top_k": 5,
        "tools": TOOLS,
    }
    response = _post(gateway, key, body, **{"anthropic-beta": CLAUDE_CODE_BETAS})
    assert response.status_code == 200, response.text
    assert "x-sealgate-ignored-beta" not in response.headers
    seen = upstream.requests[-1]
    assert seen.body == {**body, "model": "claude-sonnet-4-5"}
    assert seen.headers["anthropic-beta"] == CLAUDE_CODE_BETAS


def test_betas_outside_the_deployments_allowlist_are_not_sent_and_are_named(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    body = {"model": "claude-narrow", "max_tokens": 64, "messages": USER}
    betas = "interleaved-thinking-2025-05-14,oauth-2025-04-20,made-up-2030-01-01"
    response = _post(gateway, key, body, **{"anthropic-beta": betas})
    assert response.status_code == 200
    assert response.headers["x-sealgate-ignored-beta"] == "oauth-2025-04-20,made-up-2030-01-01"
    assert upstream.requests[-1].headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"


def test_oauth_beta_is_not_in_the_default_allowlist(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    body = {"model": "claude", "max_tokens": 64, "messages": USER}
    response = _post(gateway, key, body, **{"anthropic-beta": "oauth-2025-04-20"})
    assert response.headers["x-sealgate-ignored-beta"] == "oauth-2025-04-20"
    assert "anthropic-beta" not in upstream.requests[-1].headers


def test_fields_that_steer_the_operators_account_are_refused_by_name(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    for name in ("workspace_id", "fallbacks"):
        body = {"model": "claude", "max_tokens": 64, "messages": USER, name: "x"}
        response = _post(gateway, key, body)
        assert response.status_code == 400
        assert name in response.json()["error"]["message"]
    assert upstream.requests == []


# -- server tools -------------------------------------------------------------------------------
def test_server_tools_go_to_an_anthropic_upstream_as_sent(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    sdk.messages.create(model="claude", max_tokens=64, tools=[WEB_SEARCH], messages=USER)
    assert upstream.requests[-1].body["tools"] == [WEB_SEARCH]


def test_server_tools_on_a_translated_deployment_are_refused_never_made_empty_functions(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(
            model="fake-gpt", max_tokens=64, tools=[WEB_SEARCH, *TOOLS], messages=USER
        )
    assert "server tool 'web_search_20250305'" in str(caught.value)
    assert upstream.requests == []


def test_top_k_on_a_translated_deployment_is_refused_by_name(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    body = {"model": "fake-gpt", "max_tokens": 64, "messages": USER, "top_k": 5}
    response = _post(gateway, key, body)
    assert response.status_code == 400 and "top_k" in response.json()["error"]["message"]
    assert upstream.requests == []


# -- a translated deployment ----------------------------------------------------------------------
def test_a_translated_deployment_names_what_it_ignored_and_keeps_the_rest(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    body = {
        "model": "fake-gpt",
        "max_tokens": 64,
        "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "system", "content": "mid"},
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVBER",
                        },
                    },
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
                    },
                ],
            },
        ],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "output_config": {"effort": "low"},
        "metadata": {"user_id": "u-1"},
    }
    response = _post(gateway, key, body, **{"anthropic-beta": "claude-code-20250219"})
    assert response.status_code == 200, response.text
    ignored = response.headers["x-sealgate-ignored"].split(", ")
    assert set(ignored) == {"cache_control", "thinking", "output_config.effort", "anthropic-beta"}
    sent = upstream.requests[-1].body
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "system", "user"]
    assert sent["messages"][2]["content"] == "mid"
    assert sent["messages"][3]["content"] == [
        {
            "type": "file",
            "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBER"},
        },
        {"type": "text", "text": "notes"},
    ]
    assert sent["user"] == "u-1"
    assert "thinking" not in sent and "cache_control" not in json.dumps(sent)


def test_translated_message_ids_have_one_prefix_and_usage_is_in_anthropic_terms(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    message = sdk.messages.create(model="fake-gpt", max_tokens=64, messages=USER)
    assert message.id == "msg_fake"  # the upstream's chatcmpl-fake, its prefix swapped once
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 7)


def test_a_translated_stream_reports_the_upstreams_input_tokens_in_message_delta(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    body = {"model": "fake-gpt", "max_tokens": 64, "messages": USER, "stream": True}
    with httpx.stream(
        "POST", gateway.url + "/v1/messages", json=body, headers={"x-api-key": key}, timeout=10
    ) as response:
        text = response.read().decode()
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    start = next(e for e in events if e["type"] == "message_start")
    delta = next(e for e in events if e["type"] == "message_delta")
    assert start["message"]["usage"]["input_tokens"] > 0  # the gateway's estimate, before usage
    assert start["message"]["id"] == "msg_fake"
    assert delta["usage"]["input_tokens"] == 11 and delta["usage"]["output_tokens"] == 7


def test_the_sdk_stream_on_a_translated_deployment_ends_with_the_upstreams_usage(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    with sdk.messages.stream(model="fake-gpt", max_tokens=64, messages=USER) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "text"
    assert final.content[0].text.strip() == FakeUpstream.REPLY_TEXT  # the recording's deltas
    assert (final.usage.input_tokens, final.usage.output_tokens) == (11, 7)


# -- tool use, native ---------------------------------------------------------------------------
def test_tool_use_round_trip_on_an_anthropic_deployment(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    first = sdk.messages.create(
        model="claude",
        max_tokens=64,
        tools=TOOLS,
        messages=[{"role": "user", "content": "weather?"}],
    )
    assert first.stop_reason == "tool_use"
    use = first.content[0]
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == {"city": "Paris"}
    result: Any = {"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}
    second = sdk.messages.create(
        model="claude",
        max_tokens=64,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [use.model_dump()]},  # type: ignore[list-item]
            {"role": "user", "content": [result]},
        ],
    )
    assert second.content[0].type == "text"
    assert upstream.requests[-1].body["messages"][-1]["content"] == [result]


def test_a_streamed_tool_use_on_an_anthropic_deployment_keeps_its_input(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    with sdk.messages.stream(
        model="claude",
        max_tokens=64,
        tools=TOOLS,
        messages=[{"role": "user", "content": "weather?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "tool_use" and final.content[0].input == {"city": "Paris"}
    assert final.stop_reason == "tool_use"


def test_an_error_event_mid_stream_from_an_anthropic_upstream_reaches_the_client_as_an_error(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    upstream.then(stream_error="overloaded", error_code="overloaded_error")
    with pytest.raises(anthropic.APIError):
        _drain(sdk)


def test_an_anthropic_stream_cut_before_message_stop_is_an_error(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    upstream.then(end_after=3)
    with pytest.raises(anthropic.APIError):
        _drain(sdk)


# -- the leak canary, over the pass-through's credential path -------------------------------------
def test_the_anthropic_key_never_reaches_an_answer_header_log_or_file_of_the_native_path(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    """The upstream echoes the deployment's key in its error messages, error types and a
    mid-stream error event, on messages, streams and count_tokens: none of it comes back."""
    echo = f"invalid x-api-key: {ANTHROPIC_KEY}"
    seen: list[str] = []

    def keep(response: httpx.Response) -> None:
        seen.append(response.text)
        seen.append(str(response.headers))

    body = {"model": "claude", "max_tokens": 64, "messages": USER}
    for status in (400, 401, 429, 500):
        upstream.then(status=status, error_message=echo, error_code=ANTHROPIC_KEY)
        keep(_post(gateway, key, body))
        upstream.then(status=status, error_message=echo)
        keep(
            httpx.post(
                gateway.url + "/v1/messages/count_tokens",
                json={"model": "claude", "messages": USER},
                headers={"x-api-key": key},
                timeout=10,
            )
        )
    upstream.then(stream_error=echo, error_code=ANTHROPIC_KEY)
    with httpx.stream(
        "POST",
        gateway.url + "/v1/messages",
        json={**body, "stream": True},
        headers={"x-api-key": key, "anthropic-beta": ANTHROPIC_KEY},
        timeout=10,
    ) as streamed:
        seen.append(streamed.read().decode())
        seen.append(str(streamed.headers))
    assert any("error" in text for text in seen)
    seen.append(gateway.stderr())
    seen += [p.read_bytes().decode("latin-1") for p in gateway.workdir.rglob("*") if p.is_file()]
    for canary in (ANTHROPIC_KEY, ANTHROPIC_KEY[-20:], key):
        assert [text[:200] for text in seen if canary in text] == []
