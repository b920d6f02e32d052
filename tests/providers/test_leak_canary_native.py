"""Leak canary for the native providers' credential paths (issue 15): an AWS access key pair
with a session token by reference, a web identity token and the temporary credentials moto's
STS issues for it, and a Cohere key are planted; traffic that goes wrong in the ways we know
(the upstream echoing the secrets in its error messages and in a stream exception, a refused
signature with its refetch, throttling) runs through a real gateway process; then every answer
and its headers, the log, /metrics and every file the process wrote are searched for them."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx
from moto.server import ThreadedMotoServer

from tests.providers.conftest import COHERE_KEY
from tests.providers.test_bedrock_web_identity import ROLE, issued
from tests.support.fake_native import FakeBedrock, FakeCohere
from tests.support.gateway_process import GatewayProcess, free_port

KEY_ID = "AKIA" + secrets.token_hex(8).upper()
SECRET = "sgcanaryawssecret" + secrets.token_hex(12)
SESSION = "sgcanarysessiontoken" + secrets.token_hex(24)
WEB_TOKEN = "sgcanarywebidentity" + secrets.token_hex(24)


def chat(gateway: GatewayProcess, key: str, model: str, stream: bool = False) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json=body,
        timeout=15,
    )


def test_no_aws_key_session_token_web_identity_token_or_cohere_key_appears_anywhere(
    bedrock: FakeBedrock, cohere: FakeCohere, tmp_path: Path
) -> None:
    bedrock.reset()
    cohere.reset()
    bedrock.allow(KEY_ID, SECRET, SESSION)
    port = free_port()
    sts = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    sts.start()
    bedrock.lookup = issued
    token_file = tmp_path / "token"
    token_file.write_text(WEB_TOKEN)
    pair = json.dumps(
        {"access_key_id": KEY_ID, "secret_access_key": SECRET, "session_token": SESSION}
    )
    config = f"""
deployments:
  - model: pair
    provider: bedrock
    upstream_model: anthropic.claude-3-haiku-20240307-v1:0
    base_url: {bedrock.base_url}
    aws: {{region: us-east-1}}
    credential: env:CANARY_AWS_PAIR
    allow_private_network: true
  - model: irsa
    provider: bedrock
    upstream_model: anthropic.claude-3-haiku-20240307-v1:0
    base_url: {bedrock.base_url}
    aws:
      region: us-east-1
      web_identity: {{role_arn: "{ROLE}", token_file: {token_file}, sts_endpoint: "http://127.0.0.1:{port}"}}
    allow_private_network: true
  - model: command
    provider: cohere
    base_url: {cohere.base_url}
    credential: env:CANARY_COHERE_KEY
    allow_private_network: true
router:
  retries: 0
verify:
  mode: "off"
governance:
  default_prices: {{input: "1", output: "2"}}
"""
    env = {"CANARY_AWS_PAIR": pair, "CANARY_COHERE_KEY": COHERE_KEY}
    gateway = GatewayProcess(tmp_path / "gw", config, env=env).start()
    seen: list[str] = []
    try:
        key = gateway.create_key(["pair", "irsa", "command"])["key"]
        for model in ("pair", "irsa"):
            for stream in (False, True):
                seen.append(chat(gateway, key, model, stream).text)
            # the upstream echoes what this deployment sent it (it knows nothing else)
            if model == "pair":
                everything = f"{SECRET} {SESSION}"
            else:
                held = issued(bedrock.verified[-1])
                assert held is not None
                everything = f"{WEB_TOKEN} {held[0]} {held[1]}"
            bedrock.then(error="error_too_long", planted=everything)
            seen.append(chat(gateway, key, model).text)
            bedrock.then(stream_exception=True, planted=everything)
            seen.append(chat(gateway, key, model, stream=True).text)
            bedrock.then(error="error_throttling", planted=everything)
            response = chat(gateway, key, model)
            seen.append(response.text + json.dumps(dict(response.headers)))
            bedrock.then(error="error_signature", planted=everything)  # refetched once
            seen.append(chat(gateway, key, model).text)
        cohere.then(error="error_too_long", planted=COHERE_KEY)
        seen.append(chat(gateway, key, "command").text)
        cohere.then(error="error_throttling", planted=COHERE_KEY)
        seen.append(chat(gateway, key, "command").text)
        seen.append(httpx.get(gateway.url + "/metrics", timeout=10).text)
        issued_now = [issued(k) for k in set(bedrock.verified) if k != KEY_ID]
    finally:
        gateway.stop()
        sts.stop()
        bedrock.lookup = None
    assert "context_length_exceeded" in "".join(seen)  # the error answers did come back
    canaries = [SECRET, SESSION, WEB_TOKEN, COHERE_KEY]
    for pair_issued in issued_now:
        assert pair_issued is not None
        canaries += [pair_issued[0], str(pair_issued[1])]
    assert len(canaries) >= 6  # moto issued at least one set
    produced = "\n".join(seen) + gateway.stderr()
    for path in (tmp_path / "gw").rglob("*"):
        if path.is_file() and path.name != "config.yaml":
            produced += path.read_bytes().decode("latin-1")
    for canary in canaries:
        assert canary not in produced, "a credential leaked"
