"""Web identity for Bedrock (EKS/IRSA): the projected token is exchanged with a real STS
implementation on loopback (moto's server mode) through AssumeRoleWithWebIdentity; the
temporary credentials are held in memory, traded again before they expire, and traded again
once when Bedrock refuses them. The fake Bedrock verifies each signature with the secret and
session token moto issued."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from moto.server import ThreadedMotoServer
from moto.sts.models import sts_backends

from gateway.config.aws import WebIdentity
from gateway.errors import SecretUnavailable
from gateway.providers import sigv4
from gateway.providers.aws_credentials import REFRESH_MARGIN, WebIdentityCredentials
from tests.support.fake_native import FakeBedrock
from tests.support.gateway_process import GatewayProcess, free_port

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sealgate-bedrock"


def issued(key_id: str) -> tuple[str, str | None] | None:
    """The secret and session token moto's STS issued with ``key_id`` (its state is ours)."""
    for role in sts_backends[ACCOUNT]["aws"].assumed_roles:
        if role.access_key_id == key_id:
            return role.secret_access_key, role.session_token
    return None


@pytest.fixture(scope="module")
def sts() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("eyJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(40) + ".sig\n")
    return path


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def identity(token_file: Path, duration: int = 900) -> WebIdentity:
    return WebIdentity(
        role_arn=ROLE, token_file=str(token_file), session_name="sg-test", duration_seconds=duration
    )


def test_the_token_is_exchanged_once_and_the_credentials_are_moto_issued(
    sts: str, token_file: Path
) -> None:
    async def run() -> None:
        source = WebIdentityCredentials(identity(token_file), sts, True)
        try:
            first, second = await asyncio.gather(source.get(), source.get())
            assert first == second and source.exchanges == 1
            assert issued(first.access_key) == (first.secret_key, first.token)
        finally:
            await source.close()

    asyncio.run(run())


def test_credentials_are_traded_again_before_they_expire_and_the_token_file_is_reread(
    sts: str, token_file: Path
) -> None:
    async def run() -> None:
        clock = Clock()
        source = WebIdentityCredentials(identity(token_file, 900), sts, True, clock)
        try:
            first = await source.get()
            clock.now += 900 - REFRESH_MARGIN - 5  # still well inside its lifetime
            assert await source.get() == first and source.exchanges == 1
            clock.now += 10  # within REFRESH_MARGIN of expiry: traded again
            second = await source.get()
            assert source.exchanges == 2 and second.access_key != first.access_key
            token_file.unlink()  # the next exchange reads the file again, and fails closed
            clock.now += 900
            with pytest.raises(SecretUnavailable) as raised:
                await source.get()
            assert "token file" in raised.value.message
        finally:
            await source.close()

    asyncio.run(run())


def test_dropped_credentials_are_traded_again_but_only_those_bedrock_refused(
    sts: str, token_file: Path
) -> None:
    async def run() -> None:
        source = WebIdentityCredentials(identity(token_file), sts, True)
        try:
            first = await source.get()
            source.invalidate(first)
            second = await source.get()
            assert second.access_key != first.access_key and source.exchanges == 2
            source.invalidate(first)  # a late refusal of the old credentials drops nothing
            assert await source.get() == second and source.exchanges == 2
        finally:
            await source.close()

    asyncio.run(run())


def test_an_unreachable_sts_fails_closed_without_the_token_in_the_message(
    token_file: Path,
) -> None:
    async def run() -> None:
        dead = f"http://127.0.0.1:{free_port()}"
        source = WebIdentityCredentials(identity(token_file), dead, True)
        try:
            with pytest.raises(SecretUnavailable) as raised:
                await source.get()
        finally:
            await source.close()
        assert token_file.read_text().strip() not in str(raised.value)

    asyncio.run(run())


def test_the_sts_endpoint_is_held_to_the_egress_guard(sts: str, token_file: Path) -> None:
    """The same loopback STS by name: refused at connect time without allow_private_network,
    reached with it."""
    by_name = sts.replace("127.0.0.1", "localhost")

    async def run(allow_private: bool) -> bool:
        source = WebIdentityCredentials(identity(token_file), by_name, allow_private)
        try:
            await source.get()
            return True
        except SecretUnavailable:
            return False
        finally:
            await source.close()

    assert asyncio.run(run(False)) is False
    assert asyncio.run(run(True)) is True


@pytest.fixture(scope="module")
def web_identity_gateway(
    sts: str, bedrock: FakeBedrock, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("irsa")
    token = workdir / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(40) + ".sig")
    config = f"""
deployments:
  - model: claude-irsa
    provider: bedrock
    upstream_model: anthropic.claude-3-haiku-20240307-v1:0
    base_url: {bedrock.base_url}
    aws:
      region: us-east-1
      web_identity: {{role_arn: "{ROLE}", token_file: {token}, sts_endpoint: "{sts}"}}
    allow_private_network: true
router:
  retries: 0
verify:
  mode: "off"
governance:
  deployments:
    claude-irsa/bedrock: {{prices: {{input: "0.25", output: "1.25"}}}}
"""
    process = GatewayProcess(workdir, config).start()
    yield process
    process.stop()


def test_gateway_signs_bedrock_calls_with_the_credentials_sts_issued_and_retrades_on_403(
    web_identity_gateway: GatewayProcess, bedrock: FakeBedrock
) -> None:
    bedrock.reset()
    revoked: set[str] = set()
    bedrock.lookup = lambda key_id: None if key_id in revoked else issued(key_id)
    key = web_identity_gateway.create_key(["claude-irsa"])["key"]
    with openai.OpenAI(
        base_url=web_identity_gateway.url + "/v1", api_key=key, max_retries=0
    ) as sdk:
        reply = sdk.chat.completions.create(
            model="claude-irsa", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content == "Hello from Bedrock."
        first = bedrock.verified[-1]
        assert (
            issued(first) is not None
            and bedrock.requests[-1].headers["X-Amz-Security-Token"] == issued(first)[1]
        )  # type: ignore[index]
        revoked.add(first)  # Bedrock now refuses those credentials: traded again once
        again = sdk.chat.completions.create(
            model="claude-irsa", messages=[{"role": "user", "content": "hi"}]
        )
        assert again.choices[0].message.content == "Hello from Bedrock."
        assert bedrock.refused == ["unknown access key"]
        assert bedrock.verified[-1] not in (first,)
    bedrock.lookup = None
    log = web_identity_gateway.stderr()
    token = issued(bedrock.verified[-1])
    assert token is not None and token[0] not in log and str(token[1]) not in log


def test_the_signing_keys_of_replaced_credentials_are_forgotten(sts: str, token_file: Path) -> None:
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse"

    async def run() -> None:
        source = WebIdentityCredentials(identity(token_file), sts, True)
        try:
            sigv4.SIGNING_KEYS.clear()  # a cache: emptying it costs one derivation each
            first = await source.get()
            sigv4.sign(first, "us-east-1", url, b"{}", {}, "bedrock")
            sigv4.sign(first, "eu-west-3", url, b"{}", {}, "bedrock")
            assert len(sigv4.SIGNING_KEYS) == 2
            source.invalidate(first)  # Bedrock refused them: both their keys go
            assert len(sigv4.SIGNING_KEYS) == 0
            second = await source.get()
            sigv4.sign(second, "us-east-1", url, b"{}", {}, "bedrock")
            assert len(sigv4.SIGNING_KEYS) == 1
        finally:
            await source.close()

    asyncio.run(run())
