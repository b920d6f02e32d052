"""The real gateway process with its provider key in a real OpenBao: rotation, a Vault that is
killed, sealed or slow, start-up refusal, and the token revoked at shutdown."""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.secrets.delay_proxy import DelayProxy
from tests.secrets.gateway_vault import VaultGateway
from tests.secrets.openbao_server import OpenBao
from tests.secrets.vaultlab import VaultLab
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.openbao


def provider_key() -> str:
    return "sk-test-" + secrets.token_hex(16)


def bearer(seen: object) -> str:
    return str(seen.headers.get("Authorization", ""))  # type: ignore[attr-defined]


def test_the_key_read_from_vault_goes_to_the_deployments_upstream(
    lab: VaultLab, upstream: FakeUpstream, tmp_path: Path
) -> None:
    key = provider_key()
    gw = VaultGateway(lab, upstream, tmp_path, key).start()
    try:
        assert gw.chat().status_code == 200
        assert [bearer(r) for r in upstream.requests] == [f"Bearer {key}"]
    finally:
        gw.stop()


def test_after_rotation_an_upstream_401_picks_up_the_new_version_at_once(
    lab: VaultLab, upstream: FakeUpstream, tmp_path: Path
) -> None:
    old, new = provider_key(), provider_key()
    gw = VaultGateway(lab, upstream, tmp_path, old).start()
    try:
        assert gw.chat().status_code == 200
        lab.put(gw.path, api_key=new)
        upstream.then(status=401, error_message="Incorrect API key provided")
        assert gw.chat().status_code == 200
        assert [bearer(r) for r in upstream.requests] == [
            f"Bearer {old}",
            f"Bearer {old}",
            f"Bearer {new}",
        ]
    finally:
        gw.stop()


def test_vault_killed_mid_traffic_serves_cached_keys_until_the_ttl_then_503_then_recovers(
    bao_lab: VaultLab, upstream: FakeUpstream, tmp_path: Path
) -> None:
    bao = bao_lab.server
    assert isinstance(bao, OpenBao)
    key = provider_key()
    gw = VaultGateway(bao_lab, upstream, tmp_path, key, ttl=2).start()
    try:
        assert gw.chat().status_code == 200
        started = time.monotonic()
        bao.stop()
        assert gw.chat().status_code == 200  # served from memory
        time.sleep(max(0.0, 2.5 - (time.monotonic() - started)))  # past the TTL
        failed = gw.chat()
        assert failed.status_code == 503
        assert failed.json()["error"]["code"] == "credential_unavailable"
        assert gw.path not in failed.text and bao_lab.kv2 not in failed.text
        not_ready = gw.ready()
        assert not_ready.status_code == 503
        assert not_ready.json()["checks"]["secrets"]["vault"]["ok"] is False
        assert bao.root_token not in not_ready.text

        bao.start()  # a dev server comes back empty: restore the mount and the secret
        bao_lab.root.sys.enable_secrets_engine("kv", path=bao_lab.kv2, options={"version": "2"})
        bao_lab.put(gw.path, api_key=key)
        assert gw.chat().status_code == 200
        assert gw.ready().status_code == 200
    finally:
        gw.stop()


def test_a_sealed_vault_fails_closed_and_readiness_says_sealed(
    bao_lab: VaultLab, upstream: FakeUpstream, tmp_path: Path
) -> None:
    gw = VaultGateway(bao_lab, upstream, tmp_path, provider_key()).start()
    try:
        assert gw.ready().status_code == 200
        bao_lab.root.sys.seal()
        response = gw.chat()  # a cold cache: the first request needs Vault
        assert response.status_code == 503
        assert upstream.requests == []
        ready = gw.ready()
        assert ready.status_code == 503
        assert ready.json()["checks"]["secrets"]["vault"] == {
            "ok": False,
            "reachable": True,
            "sealed": True,
        }
    finally:
        gw.stop()


def test_a_slow_vault_never_blocks_the_health_endpoints(
    bao_lab: VaultLab, upstream: FakeUpstream, tmp_path: Path
) -> None:
    bao = bao_lab.server
    assert isinstance(bao, OpenBao)
    proxy = DelayProxy(bao.port, delay=0.0).start()
    gw = VaultGateway(bao_lab, upstream, tmp_path, provider_key(), address=proxy.address).start()
    outcome: dict[str, int] = {}
    try:
        proxy.delay = 4.0  # from now on every chunk to Vault waits
        chat = threading.Thread(target=lambda: outcome.update(chat=gw.chat().status_code))
        chat.start()
        time.sleep(0.2)  # let the chat's Vault read start
        live = httpx.get(gw.process.url + "/health/live", timeout=30)
        ready = gw.ready()
        chat_still_waiting = chat.is_alive()
        chat.join(60)
    finally:
        gw.stop()
        proxy.stop()
    assert live.status_code == 200
    assert ready.status_code == 503  # readiness gives up on Vault after a bounded wait
    assert ready.json()["checks"]["secrets"]["vault"]["ok"] is False
    assert chat_still_waiting  # both answered while the request was still waiting on Vault
    assert outcome["chat"] == 200


def test_a_token_vault_refuses_stops_start_up_with_a_clear_error(
    lab: VaultLab, upstream: FakeUpstream, tmp_path: Path
) -> None:
    bogus = "hvs." + secrets.token_urlsafe(24)
    gw = VaultGateway(lab, upstream, tmp_path, provider_key(), token=bogus)
    gw.process.start(wait=False)
    assert gw.process.wait_exit() == 2
    stderr = gw.process.stderr()
    assert "secrets.vault.auth" in stderr
    assert "Vault denied permission" in stderr
    assert bogus not in stderr


def test_the_vault_token_is_revoked_when_the_gateway_shuts_down(
    lab: VaultLab, upstream: FakeUpstream, tmp_path: Path
) -> None:
    token = lab.token(lab.read_policy(f"{lab.kv2}/data/*"))
    gw = VaultGateway(lab, upstream, tmp_path, provider_key(), token=token, revoke=True).start()
    assert gw.chat().status_code == 200
    assert lab.server.client(token).is_authenticated()
    gw.stop()  # SIGTERM: uvicorn shuts down gracefully, the lifespan closes the broker
    assert not lab.server.client(token).is_authenticated()
    assert "Vault token revoked" in gw.process.stderr()


def test_a_deployment_naming_vault_without_a_vault_section_refuses_start_up(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = f"""
deployments:
  - model: m
    provider: openai_compatible
    base_url: {upstream.base_url}/v1
    credential: "vault:secret/llm/openai#api_key"
    allow_private_network: true
verify:
  mode: "off"
governance:
  default_prices: {{input: "0"}}
"""
    process = GatewayProcess(tmp_path, config).start(wait=False)
    assert process.wait_exit() == 2
    assert "needs a secrets.vault section" in process.stderr()
