"""Setting up a real Vault/OpenBao for a test: mounts, secrets, policies, tokens, resolvers."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from gateway.config.secrets import Vault
from gateway.secrets.vault import VaultResolver
from tests.secrets.openbao_server import ExternalVault, OpenBao

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    """Run one coroutine to completion (the project has no async test plugin)."""

    async def main() -> T:
        return await coro

    return asyncio.run(main())


class VaultLab:
    def __init__(self, server: OpenBao | ExternalVault, tmp: Path) -> None:
        self.server = server
        self.tmp = tmp
        self.root = server.client()
        suffix = secrets.token_hex(4)
        self.kv2 = f"sg-kv2-{suffix}"
        self.kv1 = f"sg-kv1-{suffix}"
        self.root.sys.enable_secrets_engine("kv", path=self.kv2, options={"version": "2"})
        self.root.sys.enable_secrets_engine("kv", path=self.kv1, options={"version": "1"})

    def cleanup(self) -> None:
        for mount in (self.kv2, self.kv1):
            # The server may have been stopped or sealed by the test.
            with contextlib.suppress(Exception):
                self.root.sys.disable_secrets_engine(mount)

    def put(self, path: str, **data: str) -> int:
        """Write a KV v2 secret; returns its new version."""
        response = self.root.secrets.kv.v2.create_or_update_secret(
            path=path, secret=data, mount_point=self.kv2
        )
        return int(response["data"]["version"])

    def put_v1(self, path: str, **data: str) -> None:
        self.root.secrets.kv.v1.create_or_update_secret(
            path=path, secret=data, mount_point=self.kv1
        )

    def token(self, policy: str, **options: Any) -> str:
        """A token with ``policy`` (HCL) besides the default policy (lookup-self, renew-self)."""
        name = "sg-" + secrets.token_hex(4)
        self.root.sys.create_or_update_policy(name=name, policy=policy)
        created = self.root.auth.token.create(policies=[name], **options)
        return str(created["auth"]["client_token"])

    def read_policy(self, *paths: str) -> str:
        return "\n".join(f'path "{p}" {{ capabilities = ["read"] }}' for p in paths)

    def file_ref(self, value: str) -> str:
        path = self.tmp / ("cred-" + secrets.token_hex(4))
        path.write_text(value)
        path.chmod(0o600)
        return f"file:{path}"

    def settings(self, auth: dict[str, Any], address: str | None = None, **extra: Any) -> Vault:
        return Vault.model_validate(
            {"address": address or self.server.address, "auth": auth, **extra}
        )

    def token_resolver(self, token: str, address: str | None = None, **extra: Any) -> VaultResolver:
        auth = {"method": "token", "token": self.file_ref(token)}
        return VaultResolver(self.settings(auth, address, **extra))


def enable_approle(lab: VaultLab, policy: str, **role: Any) -> tuple[str, str, str]:
    """An AppRole auth mount and role; returns (mount, role_id, role_name)."""
    mount = "approle-" + secrets.token_hex(4)
    name = "gateway"
    lab.root.sys.enable_auth_method("approle", path=mount)
    policy_name = "sg-" + secrets.token_hex(4)
    lab.root.sys.create_or_update_policy(name=policy_name, policy=policy)
    lab.root.auth.approle.create_or_update_approle(
        name, token_policies=[policy_name], mount_point=mount, **role
    )
    role_id = lab.root.auth.approle.read_role_id(name, mount_point=mount)["data"]["role_id"]
    return mount, str(role_id), name
