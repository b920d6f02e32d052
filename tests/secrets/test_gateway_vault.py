"""The real gateway process with its provider key in a real OpenBao: rotation, a Vault that is
killed, sealed or slow, a token revoked under it, a policy that denies the key, start-up
refusal, and the token revoked at shutdown."""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.governance.gateways import assert_exact_spend
from tests.secrets.delay_proxy import DelayProxy
from tests.secrets.gateway_vault import VaultGateway
from tests.secrets.openbao_server import OpenBao
from tests.secrets.vaultlab import VaultLab
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.openbao


# Priced, so the spend table can be checked exactly: 11 + 7 tokens cost $0.025 a call.
PRICED = """
governance:
  deployments:
    vault-gpt/openai_compatible: {prices: {input: "1000", output: "2000"}}
"""


def deny_all(lab: VaultLab) -> tuple[str, str]:
    """A token whose own policy lets it read nothing (lookup-self and renew-self come with the
    default policy); returns (token, policy name), so the test can widen the policy later."""
    name = "sg-" + secrets.token_hex(4)
    lab.root.sys.create_or_update_policy(name=name, policy=lab.read_policy("nothing/*"))
    created = lab.root.auth.token.create(policies=[name])
    return str(created["auth"]["client_token"]), name


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
        # No readiness call before: it would fetch the key (to see that it can be had).
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


def test_a_token_revoked_under_the_gateway_is_replaced_at_the_next_readiness_check(
    lab: VaultLab, upstream: FakeUpstream, tmp_path: Path
) -> None:
    # Issue 13.5: readiness said authenticated: false for up to the secret TTL while requests
    # were served from the cache; only the next secret fetch logged in again.
    policy = lab.read_policy(f"{lab.kv2}/data/*")
    gw = VaultGateway(lab, upstream, tmp_path, provider_key(), token=lab.token(policy))
    gw.process.config_path.write_text(gw.process.config_path.read_text() + PRICED)  # type: ignore[union-attr]
    gw.start()
    try:
        assert gw.chat().status_code == 200
        lab.root.auth.token.revoke(Path(gw.token_ref.removeprefix("file:")).read_text())
        Path(gw.token_ref.removeprefix("file:")).write_text(lab.token(policy))  # the agent's
        ready = gw.ready()
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["secrets"]["vault"]["authenticated"] is True
        assert "the Vault token is no longer valid; logging in again" in gw.process.stderr()
        assert gw.chat().status_code == 200
        assert_exact_spend(gw.process, answered=2)
    finally:
        gw.stop()


def test_a_key_the_vault_policy_denies_makes_the_replica_not_ready_until_it_is_allowed(
    lab: VaultLab, upstream: FakeUpstream, tmp_path: Path
) -> None:
    # Issue 13.6: every request failed with 503 credential_unavailable while readiness said
    # 200: Vault itself answered and the token was valid.
    token, policy = deny_all(lab)
    gw = VaultGateway(lab, upstream, tmp_path, provider_key(), token=token, extra=PRICED).start()
    try:
        denied = gw.chat()
        assert denied.status_code == 503
        assert denied.json()["error"]["code"] == "credential_unavailable"
        ready = gw.ready()
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["secrets"]["vault"]["ok"] is True  # Vault is fine; the key is not ours
        assert checks["credentials"] == {"ok": False, "unavailable": ["vault-gpt"]}
        assert gw.path not in ready.text and lab.kv2 not in ready.text
        lab.root.sys.create_or_update_policy(name=policy, policy=lab.read_policy(f"{lab.kv2}/*"))
        ready = gw.ready()
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["credentials"] == {"ok": True}
        assert gw.chat().status_code == 200
        assert_exact_spend(gw.process, answered=1, recorded=2)
    finally:
        gw.stop()


def test_a_credential_failure_writes_one_log_line_with_its_reason(
    lab: VaultLab, upstream: FakeUpstream, tmp_path: Path
) -> None:
    # Issue 13.8: each credential failure wrote about nine log lines.
    token, _ = deny_all(lab)
    gw = VaultGateway(lab, upstream, tmp_path, provider_key(), token=token, extra=PRICED).start()
    try:
        before = len(gw.process.stderr().splitlines())
        assert gw.chat().status_code == 503
        time.sleep(0.2)  # anything logged after the answer
        # The outbox's own notes on the database's pace are not about this request; the access
        # log's one line per request (issue 17) is not a log of the failure.
        lines = [
            line
            for line in gw.process.stderr().splitlines()[before:]
            if '"logger": "sealgate.spend"' not in line
            and '"logger": "sealgate.access"' not in line
        ]
        assert len(lines) == 1, lines
        assert "policy denies reading it" in lines[0] and gw.ref in lines[0]
        assert token not in lines[0]
        assert_exact_spend(gw.process, answered=0, recorded=1)
    finally:
        gw.stop()
