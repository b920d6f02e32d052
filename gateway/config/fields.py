"""Field checks the config's sections share: an address the gateway connects to, and a
credential given by reference. Each section keeps its own example in the message."""

from __future__ import annotations

from urllib.parse import urlsplit

from gateway.refs import parse_ref


def http_url(value: str, example: str, credential_home: str) -> str:
    """An absolute http(s) URL with no user or password in it: a credential goes by reference
    (``credential_home`` says where), never in an address that logs and errors may show."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an absolute http(s) URL such as {example}")
    if parts.username or parts.password:
        raise ValueError(f"no credentials in the URL: {credential_home}")
    return value


def reference(value: str | None) -> str | None:
    """A credential reference (``env:``, ``file:``, ``vault:``...), never a literal secret."""
    if value is not None:
        parse_ref(value)  # raises ValueError with an explanation that never echoes the value
    return value
