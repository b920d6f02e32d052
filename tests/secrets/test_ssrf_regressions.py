"""SSRF regressions: nothing a client sends changes where the provider key goes.

LiteLLM issues #24952 and #37053: request-body fields (``api_base``, ``base_url``, ``api_key``,
``extra_headers``) and provider-prefixed model names such as ``openai/http://169.254.169.254/``
steered the upstream call, with the operator's key, to an address the client chose. Here a
listener stands in for the attacker's address and must see nothing, and the real upstream must
see only the gateway's own key.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.secrets.gateway_vault import HI, VaultGateway
from tests.secrets.openbao_server import ExternalVault, OpenBao
from tests.secrets.vaultlab import VaultLab
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.openbao

PROVIDER_KEY = "sk-ssrf-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def attacker() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_gateway(
    vault_server: OpenBao | ExternalVault,
    upstream_server: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[VaultGateway]:
    """One gateway for the module: every test here only reads what it sent and what the
    upstream and the attacker's listener saw, and both are reset before each test."""
    lab = VaultLab(vault_server, tmp_path_factory.mktemp("ssrf-lab"))
    gw = VaultGateway(lab, upstream_server, tmp_path_factory.mktemp("ssrf"), PROVIDER_KEY)
    gw.start()
    yield gw
    gw.stop()
    lab.cleanup()


@pytest.fixture
def gateway(
    shared_gateway: VaultGateway, upstream: FakeUpstream, attacker: FakeUpstream
) -> VaultGateway:
    attacker.reset()
    return shared_gateway


def steering_bodies(target: str) -> list[dict[str, Any]]:
    return [
        {"api_base": target},
        {"base_url": target},
        {"api_key": "sk-attacker-" + "0" * 20},
        {"extra_headers": {"Authorization": "Bearer sk-attacker", "Host": "169.254.169.254"}},
        {"api_base": "http://169.254.169.254/latest/meta-data/"},
        {"extra_body": {"api_base": target}},
    ]


def test_body_fields_never_change_where_the_key_is_sent(
    gateway: VaultGateway, upstream: FakeUpstream, attacker: FakeUpstream
) -> None:
    for extra in steering_bodies(attacker.base_url + "/v1"):
        response = gateway.chat(**extra)
        assert response.status_code == 400, extra
        assert PROVIDER_KEY not in response.text
    assert attacker.requests == []
    assert upstream.requests == []  # refused before any upstream call


@pytest.mark.parametrize(
    "model",
    [
        "openai/http://169.254.169.254/",
        "openai/http://127.0.0.1:{port}/v1",
        "http://127.0.0.1:{port}/v1",
        "vault-gpt/../../{port}",
        "azure/vault-gpt",
    ],
)
def test_model_names_never_become_addresses(
    gateway: VaultGateway, upstream: FakeUpstream, attacker: FakeUpstream, model: str
) -> None:
    name = model.format(port=attacker.port)
    response = httpx.post(
        gateway.process.url + "/v1/chat/completions",
        json={"model": name, "messages": [HI]},
        headers={"Authorization": f"Bearer {gateway.key}"},
        timeout=30,
    )
    assert response.status_code in (403, 404)
    assert attacker.requests == []
    assert upstream.requests == []


def test_a_redirect_from_the_upstream_is_not_followed_with_the_key(
    gateway: VaultGateway, upstream: FakeUpstream, attacker: FakeUpstream
) -> None:
    upstream.then(redirect_to=attacker.base_url + "/v1/chat/completions")
    response = gateway.chat()
    assert response.status_code >= 500
    assert attacker.requests == []
    assert [r.headers.get("Authorization") for r in upstream.requests] == [f"Bearer {PROVIDER_KEY}"]
