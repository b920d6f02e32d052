"""Credential references: where a secret lives, never the secret itself.

    env:NAME                          the environment variable NAME, taken out of the environment
                                      at start-up and kept in memory (gateway.secrets.local)
    file:/run/secrets/openai          the file's content (stripped), read at use time
    vault:<mount>/<path>#<field>      Vault/OpenBao KV v2 (``?version=N`` pins a version)
    vault-kv1:<mount>/<path>#<field>  Vault/OpenBao KV v1

A reference prints as itself; it is safe in config, logs and errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SCHEMES = ("env", "file", "vault", "vault-kv1")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VAULT = re.compile(
    r"^(?P<mount>[A-Za-z0-9_.-]+)/(?P<path>[A-Za-z0-9_./-]+)#(?P<field>[A-Za-z0-9_.-]+)"
    r"(?:\?version=(?P<version>[1-9][0-9]*))?$"
)

REFERENCE_HELP = (
    "expected a credential reference such as 'env:OPENAI_API_KEY', 'file:/run/secrets/openai' "
    "or 'vault:kv/llm/openai#api_key'; a literal key never belongs in the config"
)


@dataclass(frozen=True, slots=True)
class CredentialRef:
    scheme: str
    target: str  # env name, file path, or vault path within the mount
    mount: str = ""
    field: str = ""
    version: int | None = None

    def __str__(self) -> str:
        if self.scheme in ("env", "file"):
            return f"{self.scheme}:{self.target}"
        version = f"?version={self.version}" if self.version is not None else ""
        return f"{self.scheme}:{self.mount}/{self.target}#{self.field}{version}"


def parse_ref(text: str) -> CredentialRef:
    """Parse a reference, or raise ValueError with a message that never repeats the input
    (a mistyped reference may be a pasted key)."""
    scheme, sep, rest = text.partition(":")
    if not sep or scheme not in SCHEMES:
        raise ValueError(REFERENCE_HELP)
    if scheme == "env":
        if not _ENV_NAME.match(rest):
            raise ValueError("env: reference needs a variable name such as env:OPENAI_API_KEY")
        return CredentialRef("env", rest)
    if scheme == "file":
        if not rest.startswith("/"):
            raise ValueError("file: reference needs an absolute path such as file:/run/secrets/x")
        return CredentialRef("file", rest)
    match = _VAULT.match(rest)
    if not match:
        raise ValueError(
            f"{scheme}: reference needs '<mount>/<path>#<field>', "
            f"such as {scheme}:kv/llm/openai#api_key"
        )
    version = match["version"]
    if version is not None and scheme == "vault-kv1":
        raise ValueError("KV v1 has no versions; drop '?version=' or use vault:")
    return CredentialRef(
        scheme,
        match["path"],
        mount=match["mount"],
        field=match["field"],
        version=int(version) if version else None,
    )
