"""An Anthropic client on an Anthropic deployment under a guardrail policy: the request goes
through the translated (chat) path, because that is the body the guardrails read and mask, so a
masked value never reaches the upstream in the client's untranslated body; what only the
pass-through could carry is refused by name rather than sent around the guardrails."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.gateway.conftest import PLAIN, claude_gateway
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

EMAIL = "jane.roe@example.com"
KEY = "sk-ant-fake-" + secrets.token_urlsafe(24)
GUARDRAILS = """guardrails:
  default: standard
  policies:
    standard:
      detectors: {personal: mask}
"""


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("anthropic-guarded")
    yield from claude_gateway(workdir, upstream_server, KEY, PLAIN + GUARDRAILS)


@pytest.fixture(scope="module")
def key(gateway: GatewayProcess) -> str:
    return str(gateway.create_key(["claude"])["key"])


def _post(gateway: GatewayProcess, key: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/messages", json=body, headers={"x-api-key": key}, timeout=10
    )


def test_a_masked_value_does_not_reach_the_anthropic_upstream(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    body = {
        "model": "claude",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": f"mail {EMAIL} please"}],
        "thinking": {"type": "adaptive"},
    }
    response = _post(gateway, key, body)
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "message"
    sent = upstream.requests[-1]
    assert sent.path == "/v1/messages"
    assert EMAIL not in str(sent.body)
    assert "thinking" in response.headers["x-sealgate-ignored"]


def test_server_tools_under_a_guardrail_policy_are_refused_by_name(
    gateway: GatewayProcess, key: str, upstream: FakeUpstream
) -> None:
    body = {
        "model": "claude",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "search"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
    }
    response = _post(gateway, key, body)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "guardrail" in message and "web_search_20250305" in message
    assert upstream.requests == []
