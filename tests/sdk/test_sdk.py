"""The in-process SDK (issue 14, item 6): ``from sealgate import completion, acompletion`` with
the server's config, providers, router, secret broker and egress guard, and no server; typed
OpenAI-shaped answers; governance (limits, spend) when a virtual key is given. The upstreams
are the fake (tests/support/fake_upstream.py) replaying recorded OpenAI and Anthropic replies."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

import sealgate
from gateway.errors import ConfigError, ModelNotFound, PermissionDenied, RateLimited
from sealgate import ChatCompletion, ChatCompletionChunk, Sealgate
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

OPENAI_KEY = "sk-fakeprovider-" + secrets.token_urlsafe(24)
ANTHROPIC_KEY = "sk-ant-fake-" + secrets.token_urlsafe(24)
USER = [{"role": "user", "content": "hi"}]
CONFIG = """
deployments:
  - model: fake-gpt
    provider: openai_compatible
    upstream_model: upstream-gpt
    base_url: {upstream}/v1
    credential: env:SDK_OPENAI_KEY
    allow_private_network: true
  - model: claude
    provider: anthropic
    upstream_model: claude-sonnet-4-5
    base_url: {upstream}
    credential: env:SDK_ANTHROPIC_KEY
    allow_private_network: true
router:
  retries: 0
verify:
  mode: "off"
governance:
  default_prices: {{input: "1", output: "2"}}
"""


@pytest.fixture(scope="module")
def config_path(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sdk") / "sealgate.yaml"
    path.write_text(CONFIG.format(upstream=upstream_server.base_url))
    return path


@pytest.fixture(scope="module")
def client(config_path: Path) -> Iterator[Sealgate]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SDK_OPENAI_KEY", OPENAI_KEY)
        patch.setenv("SDK_ANTHROPIC_KEY", ANTHROPIC_KEY)
        made = Sealgate(config_path)
    yield made
    made.close()


def test_completion_is_a_typed_chat_completion_sent_with_the_brokered_key(
    client: Sealgate, upstream: FakeUpstream
) -> None:
    answer = client.completion(model="fake-gpt", messages=USER)
    assert isinstance(answer, ChatCompletion)
    assert answer.choices[0].message.content == FakeUpstream.REPLY_TEXT
    assert answer.usage is not None and answer.usage.prompt_tokens == 11
    seen = upstream.requests[-1]
    assert seen.body["model"] == "upstream-gpt"
    assert seen.headers["Authorization"] == f"Bearer {OPENAI_KEY}"


def test_an_anthropic_deployment_is_translated_as_the_server_does(
    client: Sealgate, upstream: FakeUpstream
) -> None:
    answer = client.completion(model="claude", messages=USER, max_tokens=64)
    assert answer.choices[0].message.content == FakeUpstream.REPLY_TEXT
    seen = upstream.requests[-1]
    assert seen.path == "/v1/messages" and seen.headers["x-api-key"] == ANTHROPIC_KEY


def test_streaming_yields_typed_chunks_with_usage(client: Sealgate, upstream: FakeUpstream) -> None:
    chunks = list(
        client.completion(
            model="fake-gpt", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == FakeUpstream.REPLY_TEXT
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7


def test_acompletion_and_async_streaming_work_from_another_event_loop(
    client: Sealgate, upstream: FakeUpstream
) -> None:
    async def run() -> tuple[ChatCompletion, str]:
        answer = await client.acompletion(model="claude", messages=USER, max_tokens=64)
        stream = await client.acompletion(model="claude", messages=USER, stream=True)
        text = ""
        async for chunk in stream:
            text += "".join(c.delta.content or "" for c in chunk.choices)
        return answer, text

    answer, text = asyncio.run(run())
    assert answer.choices[0].message.content == FakeUpstream.REPLY_TEXT
    assert text.strip() == FakeUpstream.REPLY_TEXT  # the recording's deltas


def test_the_module_level_functions_read_sealgate_config(
    config_path: Path, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEALGATE_CONFIG", str(config_path))
    monkeypatch.setenv("SDK_OPENAI_KEY", OPENAI_KEY)
    monkeypatch.delenv("SEALGATE_KEY", raising=False)
    monkeypatch.setattr(sealgate.client, "_default", None)
    try:
        answer = sealgate.completion(model="fake-gpt", messages=USER)
        assert answer.choices[0].message.content == FakeUpstream.REPLY_TEXT
        again = asyncio.run(sealgate.acompletion(model="fake-gpt", messages=USER))
        assert again.choices[0].message.content == FakeUpstream.REPLY_TEXT
    finally:
        if sealgate.client._default is not None:
            sealgate.client._default.close()


def test_bad_bodies_and_unknown_models_are_refused_before_any_upstream_call(
    client: Sealgate, upstream: FakeUpstream
) -> None:
    with pytest.raises(ModelNotFound):
        client.completion(model="nope", messages=USER)
    with pytest.raises(Exception, match="base_url"):
        client.completion(model="fake-gpt", messages=USER, base_url="http://evil")
    assert upstream.requests == []


def test_the_egress_guard_refuses_a_config_before_any_key_is_read(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "deployments:\n  - model: m\n    provider: openai_compatible\n"
        '    base_url: http://127.0.0.1:9/v1\nverify: {mode: "off"}\n'
    )
    with pytest.raises(ConfigError, match="allow_private_network"):
        Sealgate(path)


def test_with_a_virtual_key_calls_are_governed_and_their_spend_recorded(
    config_path: Path, upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK and a server share the config and the data directory's database: the server's
    admin API makes the key and reports the spend the SDK recorded."""
    gateway = GatewayProcess(
        tmp_path / "gw",
        config_path.read_text(),
        env={"SDK_OPENAI_KEY": OPENAI_KEY, "SDK_ANTHROPIC_KEY": ANTHROPIC_KEY},
    ).start()
    monkeypatch.setenv("SDK_OPENAI_KEY", OPENAI_KEY)
    try:
        made = gateway.create_key(["fake-gpt"], rpm_limit=2)
        with Sealgate(config_path, key=made["key"], data_dir=gateway.data_dir) as governed:
            governed.completion(model="fake-gpt", messages=USER)
            with pytest.raises(PermissionDenied):
                governed.completion(model="claude", messages=USER)
            governed.completion(model="fake-gpt", messages=USER)
            with pytest.raises(RateLimited):
                governed.completion(model="fake-gpt", messages=USER)
        logs = gateway.admin("GET", "/admin/spend/logs", params={"key_id": made["id"]})
        assert logs.status_code == 200, logs.text
        rows = [r for r in logs.json()["data"] if r.get("key_id") == made["id"]]
        assert len([r for r in rows if r["status"] == "ok"]) == 2
    finally:
        gateway.stop()
    assert len([r for r in upstream.requests if r.path == "/v1/chat/completions"]) == 2
