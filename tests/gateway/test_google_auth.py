"""Vertex AI's OAuth tokens (``gateway.providers.google_token``), minted by the real google-auth
through the gateway's aiohttp path against the fake Google on loopback: workload identity
federation (a projected token file exchanged at STS), refresh before expiry, one refresh for
many callers, and the token requests' own egress rule (Google's token hosts only)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.config import Deployment
from gateway.errors import UpstreamCredentialRejected, UpstreamUnavailable
from gateway.providers.google_token import TokenMinter
from gateway.providers.registry import PROVIDERS
from gateway.secrets.secret import Secret
from tests.gateway.test_google_upstream import CLIENT_EMAIL, service_account_json
from tests.support.fake_google import FakeGoogle

AUDIENCE = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k8s"


@pytest.fixture(scope="module")
def account() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def fake(account: rsa.RSAPrivateKey) -> Iterator[FakeGoogle]:
    server = FakeGoogle("unused", account.public_key(), CLIENT_EMAIL).start()
    yield server
    server.stop()


def vertex(base: str, allow_private: bool = True) -> Deployment:
    fields = {
        "model": "v",
        "provider": "vertex_ai",
        "base_url": base + "/v1/projects/p/locations/us-central1",
        "credential": "file:/run/secrets/vertex.json",
        "allow_private_network": allow_private,
    }
    return Deployment.model_validate(fields, context={"providers": PROVIDERS})


async def minted(minter: TokenMinter, key: Secret, times: int = 1) -> list[str]:
    try:
        tokens = await asyncio.gather(*(minter.token(key) for _ in range(times)))
        return [t.reveal() for t in tokens]
    finally:
        await minter.close()


def test_workload_identity_federation_exchanges_the_projected_token_at_sts(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    projected = tmp_path / "token"
    projected.write_text("eyJhbGciOiJSUzI1NiJ9.k8s-service-account-token")
    fake.workload_token, fake.audience = projected.read_text(), AUDIENCE
    configuration = {
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": f"{fake.base_url}/v1/token",
        "credential_source": {"file": str(projected)},
    }
    minter = TokenMinter(vertex(fake.base_url))
    [token] = asyncio.run(minted(minter, Secret(json.dumps(configuration))))
    assert token == fake.issued[-1] and token.startswith("ya29.fake-sts-")


def test_many_callers_share_one_token_request(fake: FakeGoogle, account: rsa.RSAPrivateKey) -> None:
    key = Secret(service_account_json(account, fake.token_uri))
    tokens = asyncio.run(minted(TokenMinter(vertex(fake.base_url)), key, times=20))
    assert len(set(tokens)) == 1 and fake.token_requests == 1


def test_a_token_near_its_expiry_is_refreshed(fake: FakeGoogle, account: rsa.RSAPrivateKey) -> None:
    fake.expires_in = 60  # inside google-auth's refresh margin (3 min 45 s): stale at once
    key = Secret(service_account_json(account, fake.token_uri))
    minter = TokenMinter(vertex(fake.base_url))

    async def twice() -> list[str]:
        try:
            return [(await minter.token(key)).reveal(), (await minter.token(key)).reveal()]
        finally:
            await minter.close()

    first, second = asyncio.run(twice())
    assert first != second and fake.token_requests == 2


def test_a_token_host_that_is_not_google_is_refused_before_connecting(
    fake: FakeGoogle, account: rsa.RSAPrivateKey
) -> None:
    # the deployment does not allow private networks: the loopback token_uri is not Google's
    key = Secret(service_account_json(account, fake.token_uri))
    minter = TokenMinter(vertex("https://us-central1-aiplatform.googleapis.com", False))
    with pytest.raises(UpstreamUnavailable, match="token endpoint could not be reached"):
        asyncio.run(minted(minter, key))
    evil = Secret(service_account_json(account, "https://tokens.example.com/token"))
    with pytest.raises(UpstreamUnavailable):
        asyncio.run(minted(TokenMinter(vertex(fake.base_url)), evil))
    assert fake.token_requests == 0


def test_a_credential_that_is_not_a_google_credential_is_refused_without_echoing_it(
    fake: FakeGoogle,
) -> None:
    for text in ("sk-not-json-at-all", '{"type": "authorized_user", "refresh_token": "x"}'):
        with pytest.raises(UpstreamCredentialRejected) as caught:
            asyncio.run(minted(TokenMinter(vertex(fake.base_url)), Secret(text)))
        assert text not in str(caught.value)
    executable = {
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": f"{fake.base_url}/v1/token",
        "credential_source": {"executable": {"command": "/bin/true"}},
    }
    with pytest.raises(UpstreamCredentialRejected):
        asyncio.run(minted(TokenMinter(vertex(fake.base_url)), Secret(json.dumps(executable))))


def test_a_refused_assertion_is_a_credential_rejection(fake: FakeGoogle) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # not the account's
    key = Secret(service_account_json(other, fake.token_uri))
    with pytest.raises(UpstreamCredentialRejected, match="refused the credential"):
        asyncio.run(minted(TokenMinter(vertex(fake.base_url)), key))
    assert fake.token_requests == 1 and fake.issued == []
