"""A Vertex AI deployment whose service-account key lives in a real OpenBao (``vault:``): the
gateway fetches the key, google-auth mints the token from it, and when the key is rotated in
Vault (the old one disabled at Google) the 401 makes the gateway refetch the key once, mint a
token from the new one and answer, all within the same request."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import openai
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.gateway.test_google_upstream import CLIENT_EMAIL, service_account_json
from tests.secrets.vaultlab import VaultLab
from tests.support.fake_google import FakeGoogle
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.openbao


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    first = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server = FakeGoogle("unused", first.public_key(), CLIENT_EMAIL).start()
    server.first_key = first  # type: ignore[attr-defined]
    yield server
    server.stop()


def test_a_vertex_key_from_vault_is_used_and_a_rotation_is_picked_up_on_the_401(
    bao_lab: VaultLab, fake: FakeGoogle, tmp_path: object
) -> None:
    first: rsa.RSAPrivateKey = fake.first_key  # type: ignore[attr-defined]
    path = "llm/vertex-" + secrets.token_hex(4)
    bao_lab.put(path, service_account=service_account_json(first, fake.token_uri))
    token = bao_lab.token(bao_lab.read_policy(f"{bao_lab.kv2}/data/*"))
    vertex = f"{fake.base_url}/v1/projects/test-project/locations/us-central1"
    config = f"""
deployments:
  - model: vertex-flash
    provider: vertex_ai
    upstream_model: gemini-2.5-flash
    base_url: {vertex}
    credential: "vault:{bao_lab.kv2}/{path}#service_account"
    allow_private_network: true
router:
  retries: 0
secrets:
  vault:
    address: {bao_lab.server.address}
    auth: {{method: token, token: "{bao_lab.file_ref(token)}"}}
verify:
  mode: "off"
"""
    gateway = GatewayProcess(bao_lab.tmp / "gateway", config).start()
    try:
        key = gateway.create_key(["vertex-flash"])["key"]
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as sdk:
            hi = [{"role": "user", "content": "hi"}]
            sdk.chat.completions.create(model="vertex-flash", messages=hi)  # type: ignore[arg-type]
            assert fake.token_requests == 1
            # rotation: a new key in Vault, the old one disabled at Google with its tokens
            second = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            bao_lab.put(path, service_account=service_account_json(second, fake.token_uri))
            fake.public_keys = [second.public_key()]
            fake.revoke()
            reply = sdk.chat.completions.create(model="vertex-flash", messages=hi)  # type: ignore[arg-type]
        assert reply.choices[0].message.content == "Hello from Gemini."
        assert fake.token_requests == 2  # one token from the new key, none from the old
        assert fake.requests[-1].headers["Authorization"] == f"Bearer {fake.issued[-1]}"
    finally:
        gateway.stop()
    log = gateway.stderr()
    assert all(t not in log for t in fake.issued) and token not in log
