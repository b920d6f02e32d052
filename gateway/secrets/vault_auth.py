"""Logging in to Vault/OpenBao: token, AppRole, JWT/OIDC and Kubernetes.

Each function runs in a Vault worker thread with a thread-local ``hvac.Client`` and returns a
``Grant``: the token as a Secret, how long it lives, whether it can be renewed. The login material
(a token, a secret_id, a JWT, a service-account token) is read from its ``file:`` reference at
every login, so a file rotated by an agent or the kubelet is picked up by the next login (an
``env:`` reference is taken out of the environment at start-up and kept in memory: see
``gateway.secrets.local``); a response-wrapped secret_id is unwrapped once and then kept in
memory, because a wrapping token can be used only once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac  # type: ignore[import-untyped]

from gateway.config.secrets import VaultAuth
from gateway.refs import CredentialRef
from gateway.secrets.errors import AccessDenied, SecretMissing
from gateway.secrets.local import take_from_environment
from gateway.secrets.secret import Secret


@dataclass(frozen=True, slots=True)
class Grant:
    token: Secret
    ttl: float  # seconds the token lived for when obtained; 0: it does not expire
    renewable: bool
    obtained_at: float  # time.monotonic()

    @property
    def expires_at(self) -> float | None:
        return self.obtained_at + self.ttl if self.ttl > 0 else None


def read_local(ref: CredentialRef) -> Secret:
    """The value of an ``env:`` or ``file:`` reference (a login credential)."""
    if ref.scheme == "env":
        taken = take_from_environment(ref.target)
        value = taken.reveal() if taken is not None else ""
    else:
        try:
            value = Path(ref.target).read_text("utf-8").strip()
        except (OSError, UnicodeDecodeError):
            raise SecretMissing(f"{ref}: the Vault login credential cannot be read") from None
    if not value:
        raise SecretMissing(f"{ref}: the Vault login credential is empty")
    return Secret(value)


def grant_from_auth(auth: Any) -> Grant:
    if not isinstance(auth, dict) or not isinstance(auth.get("client_token"), str):
        raise AccessDenied("Vault answered the login without a token")
    return Grant(
        Secret(auth["client_token"]),
        float(auth.get("lease_duration") or 0),
        bool(auth.get("renewable")),
        time.monotonic(),
    )


def grant_from_lookup(token: Secret, data: Any) -> Grant:
    if not isinstance(data, dict):
        raise AccessDenied("Vault answered the token lookup without data")
    return Grant(token, float(data.get("ttl") or 0), bool(data.get("renewable")), time.monotonic())


class Login:
    """The configured auth method. ``unwrapped`` keeps an unwrapped secret_id across logins."""

    def __init__(self, auth: VaultAuth) -> None:
        self.auth = auth
        self._secret_id: Secret | None = None

    def __call__(self, client: hvac.Client) -> Grant:
        auth = self.auth
        if auth.method == "token":
            token = read_local(auth.ref("token"))
            client.token = token.reveal()
            return grant_from_lookup(token, client.auth.token.lookup_self()["data"])
        if auth.method == "approle":
            assert auth.role_id is not None
            response = client.auth.approle.login(
                role_id=auth.role_id,
                secret_id=self._approle_secret_id(client).reveal(),
                use_token=False,
                mount_point=auth.mount_path,
            )
        elif auth.method == "jwt":
            assert auth.role is not None
            response = client.auth.jwt.jwt_login(
                role=auth.role,
                jwt=read_local(auth.ref("jwt")).reveal(),
                use_token=False,
                path=auth.mount_path,
            )
        else:
            assert auth.role is not None
            jwt = read_local(CredentialRef("file", auth.token_file))
            response = client.auth.kubernetes.login(
                role=auth.role, jwt=jwt.reveal(), use_token=False, mount_point=auth.mount_path
            )
        return grant_from_auth(response.get("auth") if isinstance(response, dict) else None)

    def _approle_secret_id(self, client: hvac.Client) -> Secret:
        if not self.auth.secret_id_wrapped:
            return read_local(self.auth.ref("secret_id"))
        if self._secret_id is None:
            client.token = read_local(self.auth.ref("secret_id")).reveal()
            try:
                data = client.sys.unwrap()["data"]
            finally:
                client.token = None
            value = data.get("secret_id") if isinstance(data, dict) else None
            if not isinstance(value, str) or not value:
                raise AccessDenied("the wrapped response holds no secret_id")
            self._secret_id = Secret(value)
        return self._secret_id
