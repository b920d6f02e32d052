"""Vault over TLS, for real: one OpenBao dev server with two more loopback listeners, one with a
server certificate and one that also requires a client certificate
(``tls_require_and_verify_client_cert`` with ``tls_client_ca_file``). Every certificate and key
is made by the test (``throwaway_ca``); none is committed. The plain dev listener is used only to
set up mounts, secrets and tokens.

What is proven: with the right CA bundle the secret is read over https; with no or the wrong CA
bundle the gateway refuses before Vault sees any request, with an error that says the certificate
could not be verified; http:// to a TLS listener and https:// to a plain one fail naming the
mismatch; mutual TLS reads with the client certificate and is refused clearly without it or with
one Vault does not trust; a CA bundle or client key that does not load stops start-up naming the
setting, never the file's content; and a real gateway process serves with its key read over
mutual TLS without any key material in its output.
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from gateway.config import GatewayConfig
from gateway.config.secrets import Vault
from gateway.errors import ConfigError
from gateway.refs import parse_ref
from gateway.secrets.setup import build_broker
from gateway.secrets.vault import VaultResolver, VaultTLSError
from gateway.serve import parse_config
from tests.secrets.gateway_vault import VaultGateway
from tests.secrets.openbao_server import OpenBao, free_port_pair
from tests.secrets.throwaway_ca import Issued, ThrowawayCA, write_key
from tests.secrets.vaultlab import VaultLab, run
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.openbao


@dataclass(frozen=True)
class TLSVault:
    server: OpenBao
    https: str  # a TLS listener
    mtls: str  # a TLS listener that requires a client certificate signed by the client CA
    ca: Path  # the CA that signs both listeners' certificate
    other_ca: Path  # a CA that signs nothing Vault presents
    client: Issued  # signed by the client CA that Vault trusts
    stranger: Issued  # a client certificate from a CA Vault does not trust


def listener(port: int, cert: Issued, client_ca: Path | None = None) -> str:
    lines = [
        f'address = "127.0.0.1:{port}"',
        f'tls_cert_file = "{cert.cert}"',
        f'tls_key_file = "{cert.key}"',
    ]
    if client_ca is not None:
        lines += [
            "tls_require_and_verify_client_cert = true",
            f'tls_client_ca_file = "{client_ca}"',
        ]
    return 'listener "tcp" {\n  ' + "\n  ".join(lines) + "\n}\n"


@pytest.fixture(scope="module")
def tls_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSVault]:
    workdir = tmp_path_factory.mktemp("vault-tls")
    server_ca = ThrowawayCA(workdir, "server")
    client_ca = ThrowawayCA(workdir, "client")
    other_ca = ThrowawayCA(workdir, "other")
    certificate = server_ca.issue("vault", server=True)
    while True:  # each listener takes its port and the next (cluster); no two may collide
        https_port, mtls_port = free_port_pair(), free_port_pair()
        extra = listener(https_port, certificate)
        extra += listener(mtls_port, certificate, client_ca=client_ca.cert)
        server = OpenBao(workdir, extra_config=extra)
        ports = [server.port, https_port, mtls_port]
        if all(abs(a - b) > 1 for i, a in enumerate(ports) for b in ports[i + 1 :]):
            break
    server.start()
    yield TLSVault(
        server,
        https=f"https://127.0.0.1:{https_port}",
        mtls=f"https://127.0.0.1:{mtls_port}",
        ca=server_ca.cert,
        other_ca=other_ca.cert,
        client=client_ca.issue("gateway", server=False),
        stranger=other_ca.issue("stranger", server=False),
    )
    server.stop()


@pytest.fixture
def tls_lab(tls_vault: TLSVault, tmp_path: Path) -> Iterator[VaultLab]:
    lab = VaultLab(tls_vault.server, tmp_path)
    yield lab
    lab.cleanup()


@dataclass(frozen=True)
class Planted:
    ref: str
    token: str
    value: str


def a_secret(lab: VaultLab) -> Planted:
    """A fresh KV v2 secret and a token that may read only it."""
    path = "llm/" + uuid.uuid4().hex
    value = "sk-tls-" + secrets.token_hex(12)
    lab.put(path, api_key=value)
    token = lab.token(lab.read_policy(f"{lab.kv2}/data/{path}"))
    return Planted(f"vault:{lab.kv2}/{path}#api_key", token, value)


def fetch(resolver: VaultResolver, ref: str) -> str:
    async def go() -> str:
        try:
            return (await resolver.fetch(parse_ref(ref))).reveal()
        finally:
            await resolver.close()

    return run(go())


def refused(resolver: VaultResolver, ref: str) -> VaultTLSError:
    with pytest.raises(VaultTLSError) as caught:
        fetch(resolver, ref)
    return caught.value


def audit_entries(server: OpenBao) -> int:
    return len(server.audit_log.read_text().splitlines())


def test_with_the_ca_bundle_the_secret_is_read_over_https(
    tls_vault: TLSVault, tls_lab: VaultLab
) -> None:
    secret = a_secret(tls_lab)
    resolver = tls_lab.token_resolver(
        secret.token, tls_vault.https, tls={"ca_bundle": str(tls_vault.ca)}
    )
    assert fetch(resolver, secret.ref) == secret.value


@pytest.mark.parametrize("bundle", ["system trust store", "another CA"])
def test_a_certificate_that_does_not_verify_is_refused_before_vault_sees_any_request(
    tls_vault: TLSVault, tls_lab: VaultLab, caplog: pytest.LogCaptureFixture, bundle: str
) -> None:
    secret = a_secret(tls_lab)
    tls = {} if bundle == "system trust store" else {"tls": {"ca_bundle": str(tls_vault.other_ca)}}
    resolver = tls_lab.token_resolver(secret.token, tls_vault.https, **tls)
    before = audit_entries(tls_vault.server)
    with caplog.at_level(logging.DEBUG):
        error = refused(resolver, secret.ref)
    assert "TLS certificate could not be verified" in str(error)
    assert "unable to get local issuer certificate" in str(error)
    assert "secrets.vault.tls.ca_bundle" in str(error)
    assert audit_entries(tls_vault.server) == before  # the token never reached Vault
    assert secret.token not in str(error) and secret.token not in caplog.text


def test_plain_http_to_a_tls_listener_is_refused_naming_the_scheme(
    tls_vault: TLSVault, tls_lab: VaultLab, caplog: pytest.LogCaptureFixture
) -> None:
    secret = a_secret(tls_lab)
    plain = tls_vault.https.replace("https://", "http://")
    before = audit_entries(tls_vault.server)
    with caplog.at_level(logging.DEBUG):
        error = refused(tls_lab.token_resolver(secret.token, plain), secret.ref)
    assert "speaks TLS but the address is http://; use https://" in str(error)
    assert "went out unencrypted" in str(error)
    assert audit_entries(tls_vault.server) == before
    assert secret.token not in str(error) and secret.token not in caplog.text


def test_https_to_a_plain_listener_is_refused_naming_the_scheme(
    tls_vault: TLSVault, tls_lab: VaultLab
) -> None:
    secret = a_secret(tls_lab)
    address = tls_vault.server.address.replace("http://", "https://")
    error = refused(tls_lab.token_resolver(secret.token, address), secret.ref)
    assert "does not speak TLS at that address" in str(error)


def test_tls_settings_with_an_http_address_are_a_config_error() -> None:
    with pytest.raises(ValidationError, match="tls settings need an https:// address"):
        Vault.model_validate(
            {
                "address": "http://vault.internal:8200",
                "auth": {"method": "token", "token": "file:/run/secrets/vault-token"},
                "tls": {"ca_bundle": "/etc/sealgate/vault-ca.pem"},
            }
        )


def mtls(tls_vault: TLSVault, client: Issued | None) -> dict[str, Any]:
    tls = {"ca_bundle": str(tls_vault.ca)}
    if client is not None:
        tls |= {"client_cert": str(client.cert), "client_key": str(client.key)}
    return {"tls": tls}


def test_mutual_tls_with_the_client_certificate_reads_the_secret(
    tls_vault: TLSVault, tls_lab: VaultLab
) -> None:
    secret = a_secret(tls_lab)
    settings = mtls(tls_vault, tls_vault.client)
    resolver = tls_lab.token_resolver(secret.token, tls_vault.mtls, **settings)
    assert fetch(resolver, secret.ref) == secret.value


@pytest.mark.parametrize("client", ["no certificate", "one from an untrusted CA"])
def test_mutual_tls_without_a_trusted_client_certificate_is_refused_clearly(
    tls_vault: TLSVault, tls_lab: VaultLab, caplog: pytest.LogCaptureFixture, client: str
) -> None:
    secret = a_secret(tls_lab)
    settings = mtls(tls_vault, None if client == "no certificate" else tls_vault.stranger)
    before = audit_entries(tls_vault.server)
    with caplog.at_level(logging.DEBUG):
        resolver = tls_lab.token_resolver(secret.token, tls_vault.mtls, **settings)
        error = refused(resolver, secret.ref)
    # TLS 1.3 checks the client certificate after the handshake: Vault's alert is read, or only
    # its reset when that arrives first (tests/secrets/test_vault_tls_errors.py); either way the
    # error names the client certificate.
    refusals = ("Vault refused the TLS client certificate, or needs one", "Vault closed the TLS")
    assert any(refusal in str(error) for refusal in refusals), str(error)
    assert "secrets.vault.tls.client_cert" in str(error)
    assert audit_entries(tls_vault.server) == before
    assert secret.token not in str(error) and secret.token not in caplog.text


# -- start-up -------------------------------------------------------------------------------
def gateway_config(address: str, token_ref: str, tls: dict[str, str]) -> GatewayConfig:
    vault = {"address": address, "auth": {"method": "token", "token": token_ref}, "tls": tls}
    deployment = {
        "model": "m",
        "provider": "openai_compatible",
        "base_url": "http://127.0.0.1:9/v1",
        "credential": "vault:secret/llm/openai#api_key",
        "allow_private_network": True,
    }
    text = {"deployments": [deployment], "secrets": {"vault": vault}, "verify": {"mode": "off"}}
    return parse_config(json.dumps(text), "test")


def test_a_certificate_that_does_not_verify_stops_start_up_as_a_configuration_error(
    tls_vault: TLSVault, tls_lab: VaultLab
) -> None:
    secret = a_secret(tls_lab)
    config = gateway_config(
        tls_vault.https, tls_lab.file_ref(secret.token), {"ca_bundle": str(tls_vault.other_ca)}
    )
    with pytest.raises(ConfigError) as caught:
        build_broker(config.secrets, config.credentials())
    assert caught.value.key == "secrets.vault"
    assert "TLS certificate could not be verified" in caught.value.problem
    assert secret.token not in str(caught.value)


CANARY = "sgcanaryclientkey" + secrets.token_hex(8)


def broken_key(kind: str, tls_vault: TLSVault, directory: Path) -> Path:
    path = directory / "client.key"
    if kind == "not a key":
        path.write_text(f"-----BEGIN PRIVATE KEY-----\n{CANARY}\n-----END PRIVATE KEY-----\n")
    elif kind == "encrypted":
        write_key(ec.generate_private_key(ec.SECP256R1()), path, passphrase=CANARY.encode())
    elif kind == "another certificate's key":
        path.write_bytes(tls_vault.stranger.key.read_bytes())
    return path  # "missing": never written


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("not a key", "do not load as a matching PEM certificate and key"),
        ("encrypted", "is encrypted with a passphrase"),
        ("another certificate's key", "KEY_VALUES_MISMATCH"),
        ("missing", "cannot be read (No such file or directory)"),
    ],
)
def test_a_client_key_that_does_not_load_stops_start_up_without_its_content(
    tls_vault: TLSVault,
    tls_lab: VaultLab,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    problem: str,
) -> None:
    key = broken_key(kind, tls_vault, tmp_path)
    tls = {"ca_bundle": str(tls_vault.ca), "client_cert": str(tls_vault.client.cert)}
    config = gateway_config(
        tls_vault.mtls, tls_lab.file_ref("unused"), tls | {"client_key": str(key)}
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigError) as caught:
        build_broker(config.secrets, config.credentials())
    assert caught.value.key == "secrets.vault.tls.client_key"
    assert problem in caught.value.problem
    key_text = key.read_text() if key.exists() else ""
    for shown in (str(caught.value), caplog.text):
        assert CANARY not in shown
        assert all(line not in shown for line in key_text.splitlines() if "-----" not in line)


def test_a_ca_bundle_that_is_not_pem_stops_start_up_naming_the_setting(
    tls_vault: TLSVault, tls_lab: VaultLab, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text(CANARY)
    config = gateway_config(tls_vault.https, tls_lab.file_ref("unused"), {"ca_bundle": str(bundle)})
    with pytest.raises(ConfigError) as caught:
        build_broker(config.secrets, config.credentials())
    assert caught.value.key == "secrets.vault.tls.ca_bundle"
    assert "holds no PEM certificate" in caught.value.problem
    assert CANARY not in str(caught.value)


# -- the gateway process --------------------------------------------------------------------
def tls_lines(tls_vault: TLSVault, ca: Path) -> str:
    client = tls_vault.client
    return (
        f'    tls: {{ca_bundle: "{ca}", client_cert: "{client.cert}", client_key: "{client.key}"}}'
    )


def test_a_gateway_process_serves_with_its_key_read_over_mutual_tls_and_shows_no_key_material(
    tls_vault: TLSVault, tls_lab: VaultLab, upstream: FakeUpstream, tmp_path: Path
) -> None:
    provider_key = "sk-mtls-" + secrets.token_hex(16)
    gw = VaultGateway(
        tls_lab,
        upstream,
        tmp_path / "gateway",
        provider_key,
        address=tls_vault.mtls,
        vault_extra=tls_lines(tls_vault, tls_vault.ca),
        extra="logging:\n  level: debug\n",
    )
    try:
        gw.start()
        assert gw.chat().status_code == 200
        assert [seen.headers["Authorization"] for seen in upstream.requests] == [
            f"Bearer {provider_key}"
        ]
    finally:
        gw.stop()
    stderr = gw.process.stderr()
    assert '"level": "debug"' in stderr
    key_lines = [line for line in tls_vault.client.key.read_text().splitlines() if "--" not in line]
    for secret in (provider_key, tls_vault.server.root_token, *key_lines):
        assert secret not in stderr


def test_a_gateway_process_with_the_wrong_ca_bundle_refuses_to_start_saying_why(
    tls_vault: TLSVault, tls_lab: VaultLab, upstream: FakeUpstream, tmp_path: Path
) -> None:
    gw = VaultGateway(
        tls_lab,
        upstream,
        tmp_path / "gateway",
        "sk-mtls-" + secrets.token_hex(16),
        address=tls_vault.mtls,
        vault_extra=tls_lines(tls_vault, tls_vault.other_ca),
    )
    gw.process.start(wait=False)
    assert gw.process.wait_exit() == 2
    stderr = gw.process.stderr()
    assert "secrets.vault" in stderr
    assert "TLS certificate could not be verified" in stderr
    assert tls_vault.server.root_token not in stderr
