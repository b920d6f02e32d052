"""Credential tokens: virtual keys, admin tokens, and any bearer credential the gateway mints.

A token reads ``<prefix><id>-<secret>``: 16 hex characters of id, then 43 characters of URL-safe
secret (256 bits). The id finds the stored row; the SHA-256 of the whole token is what is stored,
and it is compared in constant time. A hash of a 256-bit random secret needs no slow KDF: nothing
can be guessed from it. The token itself is shown once, when it is minted, and never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

ID_HEX = 16
SECRET_CHARS = 43  # secrets.token_urlsafe(32)
_HEX = frozenset("0123456789abcdef")


def digest(token: str) -> str:
    """The stored form of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def matches(stored: str, token: str) -> bool:
    """Whether ``token`` hashes to ``stored``, in constant time."""
    return hmac.compare_digest(stored, digest(token))


def new_id() -> str:
    return secrets.token_hex(ID_HEX // 2)


@dataclass(frozen=True)
class TokenKind:
    """One kind of token, told apart by its prefix (``sk-sg-`` virtual keys, ``sg-adm-`` admin
    tokens)."""

    prefix: str

    @property
    def length(self) -> int:
        return len(self.prefix) + ID_HEX + 1 + SECRET_CHARS

    def mint(self, token_id: str | None = None) -> tuple[str, str]:
        """A new (id, token). The caller stores ``digest(token)`` and shows the token once."""
        token_id = token_id or new_id()
        return token_id, f"{self.prefix}{token_id}-{secrets.token_urlsafe(32)}"

    def id_of(self, token: str) -> str | None:
        """The id inside a well-formed token of this kind, or None for anything else."""
        start = len(self.prefix)
        if len(token) != self.length or not token.startswith(self.prefix):
            return None
        if token[start + ID_HEX] != "-":
            return None
        token_id = token[start : start + ID_HEX]
        return token_id if _HEX.issuperset(token_id) else None


VIRTUAL_KEY = TokenKind("sk-sg-")
ADMIN_TOKEN = TokenKind("sg-adm-")
