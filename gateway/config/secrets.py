"""The ``secrets.vault`` section of the config: where Vault/OpenBao is and how to log in to it.

Every value that would let someone act as the gateway (a token, a secret_id, a JWT) is a credential
*reference* (``env:`` or ``file:``), read when the gateway logs in; the config never holds it.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.refs import CredentialRef, parse_ref

DEFAULT_VAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_VAULT_WORKERS = 4
MAX_VAULT_WORKERS = 32
DEFAULT_K8S_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path
AUTH_MOUNTS = {"token": "token", "approle": "approle", "jwt": "jwt", "kubernetes": "kubernetes"}

Seconds = Annotated[float, Field(gt=0, le=300)]
_NAMESPACE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/?$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _local_reference(value: str | None) -> str | None:
    """A login credential must come from the environment or a file: never from Vault itself,
    and never written literally in the config."""
    if value is None:
        return None
    ref = parse_ref(value)
    if ref.scheme not in ("env", "file"):
        raise ValueError("a Vault login credential must be an env: or file: reference")
    return value


class VaultTLS(_Strict):
    ca_bundle: str | None = Field(None, description="PEM file of the CAs that sign Vault's cert")
    client_cert: str | None = None  # PEM, for mutual TLS
    client_key: str | None = None  # PEM, unencrypted (checked at start-up: gateway.secrets.setup)

    @property
    def configured(self) -> bool:
        return self.ca_bundle is not None or self.client_cert is not None

    @model_validator(mode="after")
    def _pair(self) -> VaultTLS:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together")
        return self


class VaultAuth(_Strict):
    method: Literal["token", "approle", "jwt", "kubernetes"]
    mount: str | None = Field(None, description="auth mount path; default: the method's name")
    token: str | None = None  # method token: a reference to the token
    role_id: str | None = None  # method approle (not secret on its own)
    secret_id: str | None = None  # method approle: a reference
    secret_id_wrapped: bool = False  # the secret_id reference holds a response-wrapping token
    role: str | None = None  # methods jwt and kubernetes
    jwt: str | None = None  # method jwt: a reference, usually file: (a workload identity token)
    token_file: str = DEFAULT_K8S_TOKEN_FILE  # method kubernetes: service-account token
    revoke_on_shutdown: bool | None = None  # default: yes for tokens the gateway logged in for

    @field_validator("token", "secret_id", "jwt")
    @classmethod
    def _local_refs(cls, value: str | None) -> str | None:
        return _local_reference(value)

    @model_validator(mode="after")
    def _method_needs(self) -> VaultAuth:
        needs = {
            "token": ("token",),
            "approle": ("role_id", "secret_id"),
            "jwt": ("role", "jwt"),
            "kubernetes": ("role",),
        }[self.method]
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise ValueError(f"auth method {self.method} needs {', '.join(missing)}")
        if self.secret_id_wrapped and self.method != "approle":
            raise ValueError("secret_id_wrapped applies only to method approle")
        if not self.token_file.startswith("/"):
            raise ValueError("token_file must be an absolute path")
        return self

    @property
    def mount_path(self) -> str:
        return self.mount or AUTH_MOUNTS[self.method]

    @property
    def revokes(self) -> bool:
        if self.revoke_on_shutdown is not None:
            return self.revoke_on_shutdown
        return self.method != "token"

    def ref(self, name: Literal["token", "secret_id", "jwt"]) -> CredentialRef:
        value = getattr(self, name)
        assert value is not None
        return parse_ref(value)


class Vault(_Strict):
    address: str
    namespace: str | None = None
    auth: VaultAuth
    tls: VaultTLS = VaultTLS()
    timeout_seconds: Seconds = DEFAULT_VAULT_TIMEOUT_SECONDS
    workers: int = Field(DEFAULT_VAULT_WORKERS, ge=1, le=MAX_VAULT_WORKERS)

    @field_validator("address")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected the Vault address as a URL such as https://vault:8200")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("expected a Vault address without credentials, query or fragment")
        if parts.path not in ("", "/"):
            raise ValueError("expected the Vault address without a path (no /v1)")
        return value.rstrip("/")

    @field_validator("namespace")
    @classmethod
    def _namespace_path(cls, value: str | None) -> str | None:
        if value is not None and not _NAMESPACE.match(value):
            raise ValueError("expected a namespace path such as 'llm' or 'org/llm'")
        return value

    @model_validator(mode="after")
    def _tls_needs_https(self) -> Vault:
        if self.tls.configured and not self.address.startswith("https://"):
            raise ValueError("tls settings need an https:// address; with http:// they do nothing")
        return self
