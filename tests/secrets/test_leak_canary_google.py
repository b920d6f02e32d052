"""Leak canary for the Google credential paths (issue 15): a Gemini API key, a Vertex AI
service-account key (its private key, the JWT assertions google-auth signs with it) and the OAuth
access tokens minted from them are planted; traffic that goes wrong in every way the fake Google
can make it (its errors echoing the caller's credential in their messages, in a stream's error
event, the token endpoint echoing the assertion, tokens revoked mid-run) runs through a real
gateway process logging at debug; then every answer and its headers, the log, /metrics, the spend
logs and every file the process wrote are searched for each of them."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.gateway.test_google_upstream import CLIENT_EMAIL, service_account_json
from tests.support.fake_google import FakeGoogle
from tests.support.gateway_process import GatewayProcess


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_no_google_key_service_account_key_or_oauth_token_appears_anywhere(
    tmp_path: Path,
) -> None:
    api_key = "AIzaSyCanary" + secrets.token_urlsafe(24)
    account = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fake = FakeGoogle(api_key, account.public_key(), CLIENT_EMAIL).start()
    key_json = service_account_json(account, fake.token_uri)
    vertex = f"{fake.base_url}/v1/projects/test-project/locations/us-central1"
    config = f"""
deployments:
  - model: gemini-flash
    provider: gemini
    upstream_model: gemini-2.5-flash
    base_url: {fake.base_url}/v1beta
    credential: env:CANARY_GEMINI_KEY
    allow_private_network: true
  - model: vertex-flash
    provider: vertex_ai
    upstream_model: gemini-2.5-flash
    base_url: {vertex}
    credential: env:CANARY_SERVICE_ACCOUNT
    allow_private_network: true
router:
  retries: 0
verify:
  mode: "off"
logging:
  level: debug
"""
    workdir = tmp_path / "gateway"
    env = {"CANARY_GEMINI_KEY": api_key, "CANARY_SERVICE_ACCOUNT": key_json}
    gateway = GatewayProcess(workdir, config, env=env).start()
    bodies: list[str] = []
    try:
        key = gateway.create_key(["gemini-flash", "vertex-flash"])["key"]

        def chat(model: str, **extra: object) -> httpx.Response:
            response = httpx.post(
                gateway.url + "/v1/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "hi"}], **extra},
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
            bodies.extend([response.text, str(response.headers)])
            return response

        echo = "API key not valid: {token}"
        for model in ("gemini-flash", "vertex-flash"):
            assert chat(model).status_code == 200
            assert chat(model, stream=True).status_code == 200
            fake.then("error_invalid_argument", status=400, message=echo)
            assert chat(model).status_code == 400
            fake.then("error_resource_exhausted", status=429, message=echo)
            assert chat(model).status_code == 429
            fake.then("error_unauthenticated", status=500, message=echo)
            assert chat(model).status_code == 502
            fake.then("stream_generate_content", stream_error=echo)
            streamed = chat(model, stream=True)
            assert streamed.status_code == 200 and "error" in streamed.text
        fake.then("error_api_key_invalid", status=400, message=echo)
        assert chat("gemini-flash").status_code == 200  # refetched once, then served
        fake.revoke()  # the held token is refused: a new one is minted, after a refusal
        fake.then("error_unauthenticated", status=401, message=echo)
        fake.refuse_next_token("Invalid JWT: {assertion}")
        assert chat("vertex-flash").status_code == 502
        assert chat("vertex-flash").status_code == 200  # minted anew from the key
        metrics = gateway.admin("GET", "/metrics")
        spend = gateway.admin("GET", "/admin/spend/logs", params={"limit": 1000})
        bodies += [metrics.text, spend.text]
        assert len(spend.json()["data"]) >= 14
    finally:
        gateway.stop()
        fake.stop()

    stderr = gateway.stderr()
    assert '"level": "debug"' in stderr  # the log was captured at every level
    searched = [*bodies, stderr]
    searched += [p.read_bytes().decode("latin-1") for p in files_under(workdir)]
    assert files_under(gateway.data_dir)
    private_key = json.loads(key_json)["private_key"]
    key_lines = [line for line in private_key.splitlines() if not line.startswith("-----")]
    assert len(fake.issued) >= 2 and len(fake.assertions) >= 3  # the canaries were made
    canaries = [api_key, api_key[-16:], key, *fake.issued, *fake.assertions, *key_lines[1:4]]
    canaries += [token.split(".", 1)[1][-20:] for token in fake.issued]
    for canary in canaries:
        leaks = [text[:200] for text in searched if canary in text]
        assert leaks == [], canary[:12]
