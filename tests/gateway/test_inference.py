"""The inference routes and the outer guard in process: the real ASGI app (``api.app``) over a real
key store and governance on SQLite, with scripted adapters instead of upstreams, driven with
httpx's ASGI transport. What is about HTTP and translation is proven here without a process;
what is about the process (start-up, signals, real sockets) stays in the subprocess tests.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.api import errors as api_errors
from gateway.api.admin.context import AdminContext
from gateway.api.app import Gateway, build_app
from gateway.api.health import Readiness
from gateway.api.inference import Inference
from gateway.auth import AdminCredential, Authenticator
from gateway.errors import UpstreamRejected
from gateway.governance.setup import build_governance
from gateway.logs import TracebackThrottle
from gateway.routing.router import Route, Router
from gateway.secrets.broker import SecretBroker
from gateway.serve import parse_config
from gateway.store.db import make_engine, migrate
from gateway.store.keys import KeyStore
from tests.support.adapters import ScriptedAdapter

pytestmark = pytest.mark.anyio

ADMIN_KEY = "sga-inprocess-admin-key-0123456789"
CONFIG = """
deployments:
  - model: m
    provider: mock
    id: scripted
verify:
  mode: "off"
"""
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


@dataclass
class InProcess:
    client: httpx.AsyncClient
    adapter: ScriptedAdapter
    key: str
    app: Gateway


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[InProcess]:
    config = parse_config(CONFIG, "in-process")
    engine = make_engine(f"sqlite:///{tmp_path / 'sealgate.db'}")
    migrate(engine)
    keys = KeyStore(engine)
    auth = Authenticator(keys, 30)
    governance = build_governance(config.governance, config.deployments, engine, tmp_path)
    adapter = ScriptedAdapter("scripted")
    (deployment,) = config.deployments
    router = Router(
        config.router, [Route(deployment, adapter, None)], SecretBroker({}, ttl=300, stale=0)
    )
    admin = AdminCredential(ADMIN_KEY)
    app = build_app(
        Inference(router, governance, auth, config.server.max_body_bytes),
        auth,
        AdminContext(admin, engine, keys, auth, governance, router.models),
        Readiness(engine, admin),
        [],
        [],
    )
    key, _ = keys.create(["m"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sealgate") as client:
        yield InProcess(client, adapter, key, app)
    await governance.close()
    engine.dispose()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_a_chat_call_is_answered_with_the_adapters_reply_as_it_came(
    gateway: InProcess,
) -> None:
    gateway.adapter.script.append(json.dumps(COMPLETION))
    answer = await gateway.client.post(
        "/v1/chat/completions", json=CHAT, headers=bearer(gateway.key)
    )
    assert answer.status_code == 200
    assert answer.json() == COMPLETION


async def test_a_call_without_a_key_is_refused_before_any_adapter_is_asked(
    gateway: InProcess,
) -> None:
    answer = await gateway.client.post("/v1/chat/completions", json=CHAT)
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "authentication_error"
    assert gateway.adapter.keys == []


async def test_an_anthropic_call_is_translated_in_and_its_errors_come_back_in_anthropic_shape(
    gateway: InProcess,
) -> None:
    gateway.adapter.script.append(json.dumps(COMPLETION))
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    answer = await gateway.client.post(
        "/v1/messages", json=body, headers={"x-api-key": gateway.key}
    )
    assert answer.status_code == 200
    message = answer.json()
    assert message["type"] == "message" and message["id"] == "msg_1"
    assert message["content"] == [{"type": "text", "text": "hello"}]
    assert message["usage"] == {
        "input_tokens": 3,
        "output_tokens": 1,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }

    gateway.adapter.script.append(UpstreamRejected("the upstream said no", upstream_status=400))
    refused = await gateway.client.post(
        "/v1/messages", json=body, headers={"x-api-key": gateway.key}
    )
    assert refused.status_code == 400
    assert refused.json() == {
        "type": "error",
        "error": {"type": "api_error", "message": "the upstream said no"},
    }


async def test_an_unexpected_exception_is_a_500_that_names_nothing_of_its_cause(
    gateway: InProcess,
) -> None:
    secret = "sk-leaked-in-an-exception-0123456789"
    gateway.adapter.script.append(RuntimeError(f"boom with {secret}"))
    answer = await gateway.client.post(
        "/v1/chat/completions", json=CHAT, headers=bearer(gateway.key)
    )
    assert answer.status_code == 500
    assert answer.json()["error"]["message"] == "internal error"
    assert secret not in answer.text and "RuntimeError" not in answer.text


async def test_a_stream_is_passed_through_and_its_upstream_closed(gateway: InProcess) -> None:
    body = {**CHAT, "stream": True}
    answer = await gateway.client.post(
        "/v1/chat/completions", json=body, headers=bearer(gateway.key)
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.text.count("data: ") == 3 and answer.text.endswith("data: [DONE]\n\n")
    assert [stream.closed for stream in gateway.adapter.streams] == [True]


async def test_admin_routes_answer_in_openai_shape_and_need_the_admin_credential(
    gateway: InProcess,
) -> None:
    refused = await gateway.client.get("/admin/keys")
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "authentication_error"
    listed = await gateway.client.get("/admin/keys", headers=bearer(ADMIN_KEY))
    assert listed.status_code == 200
    assert [k["models"] for k in listed.json()["data"]] == [["m"]]
    assert "key_hash" not in listed.text


async def test_a_repeated_unexpected_exception_logs_one_traceback_a_minute_and_counts_each(
    gateway: InProcess, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12: whoever finds a 500 cannot flood the log with its traceback."""
    now = [1000.0]
    monkeypatch.setattr(api_errors, "TRACEBACKS", TracebackThrottle(clock=lambda: now[0]))
    counted = api_errors.INTERNAL_ERRORS[()]

    async def fail(times: int, exc: Exception) -> None:
        for _ in range(times):
            gateway.adapter.script.append(exc)
            answer = await gateway.client.post(
                "/v1/chat/completions", json=CHAT, headers=bearer(gateway.key)
            )
            assert answer.status_code == 500

    def tracebacks() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage() == "unexpected error" and r.exc_info]

    with caplog.at_level(logging.ERROR, logger="sealgate"):
        await fail(50, RuntimeError("boom"))
        assert len(tracebacks()) == 1
        await fail(3, KeyError("another cause"))
        assert len(tracebacks()) == 2
        now[0] += 61
        await fail(1, RuntimeError("boom"))
    assert len(tracebacks()) == 3
    assert tracebacks()[-1].__dict__["sg_unlogged_since"] == 49
    assert api_errors.INTERNAL_ERRORS[()] == counted + 54
