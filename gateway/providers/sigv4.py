"""AWS Signature Version 4 for Bedrock's requests, with hashlib and hmac.

botocore's ``SigV4Auth`` cost 60-124 µs a request (an ``AWSRequest`` built and prepared, a
header map that is an ``email.message.Message``, the signing key derived afresh each time),
most of what Bedrock's path cost over the OpenAI path. This signer does only what the Bedrock
adapter sends: a POST of a body already in bytes, to a URL whose path the adapter
percent-encoded, with a handful of headers and, for temporary credentials, a session token. It
follows botocore's reading of the spec exactly, so tests hold it to botocore (the oracle) over a
corpus of requests (``tests/providers/test_sigv4.py``):

- the canonical URI is the URL's path with dot segments and empty segments removed, then
  percent-encoded once more (``/~`` kept): the ``%3A`` of ``...-v1:0`` is signed as ``%253A``,
  as AWS expects of every service but S3;
- the canonical query is the URL's pairs sorted as written (Bedrock's URLs have none);
- every header is signed but the hop-by-hop and tracing ones botocore leaves out, names in lower
  case, values with their whitespace runs collapsed to one space, plus ``host`` (without a
  default port) and ``x-amz-date``, and ``x-amz-security-token`` when there is a session token;
- the payload is always hashed (never ``UNSIGNED-PAYLOAD``), so, as with botocore's
  ``SigV4Auth``, no ``X-Amz-Content-Sha256`` header is sent.

The signing key (four HMACs from the secret over the date, region and service) is derived once
per secret, day, region and service and kept in ``SIGNING_KEYS``, in memory only; neither the
secret nor a derived key is logged, put in an error, or shown by a ``repr``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
TIMESTAMP = "%Y%m%dT%H%M%SZ"
# Headers botocore does not sign: hop-by-hop, or rewritten and added on the way (tracing).
UNSIGNED_HEADERS = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
DEFAULT_PORTS = {"http": 80, "https": 443}
KEYS_HELD = 64  # derived keys kept; a day, a region and a credential each make one


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """An access key pair, with the session token of temporary credentials. The secret and the
    token are left out of the ``repr`` (the key id is not a secret: AWS logs it in CloudTrail)."""

    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


class SigningKeys:
    """Derived signing keys by (secret, day, region, service), in memory only; emptied when
    ``KEYS_HELD`` are held (the set only grows with days and rotated credentials)."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str, str, str], bytes] = {}

    def __repr__(self) -> str:
        return f"<SigningKeys: {len(self._keys)} held>"

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, secret: str, day: str, region: str, service: str) -> bytes:
        index = (secret, day, region, service)
        key = self._keys.get(index)
        if key is None:
            if len(self._keys) >= KEYS_HELD:
                self._keys.clear()
            key = _derive(secret, day, region, service)
            self._keys[index] = key
        return key

    def discard(self, secret: str) -> None:
        """Forget every key derived from ``secret`` (temporary credentials that were replaced)."""
        for index in [index for index in self._keys if index[0] == secret]:
            del self._keys[index]

    def clear(self) -> None:
        self._keys.clear()


SIGNING_KEYS = SigningKeys()


def _derive(secret: str, day: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def _without_dot_segments(path: str) -> str:
    """RFC 3986's dot segments resolved, and the empty segments AWS does not sign dropped; the
    leading slash kept, and the trailing one when anything is left."""
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    lead = "/" if path.startswith("/") else ""
    tail = "/" if path.endswith("/") and kept else ""
    return lead + "/".join(kept) + tail


@lru_cache(maxsize=256)
def _target(url: str) -> tuple[str, str, str]:
    """The host header's value, the canonical URI and the canonical query of ``url`` (a
    deployment has a few URLs, so each is worked out once)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    if parts.port is not None and parts.port != DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    path = quote(_without_dot_segments(parts.path) or "/", safe="/~")
    pairs = (
        sorted(pair.partition("=")[::2] for pair in parts.query.split("&")) if parts.query else []
    )
    query = "&".join(f"{name}={value}" for name, value in pairs)
    return host, path, query


def sign(
    credentials: AwsCredentials,
    region: str,
    url: str,
    payload: bytes,
    headers: dict[str, str],
    service: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """``headers`` with X-Amz-Date, X-Amz-Security-Token (with a session token) and
    Authorization added, for a POST of ``payload`` to ``url`` (sent exactly as written).
    ``headers`` hold none of those three, nor ``Date`` (botocore would replace them; the
    adapter never sends them)."""
    stamp = (now or datetime.now(UTC)).strftime(TIMESTAMP)
    day = stamp[:8]
    out = dict(headers)
    out["X-Amz-Date"] = stamp
    if credentials.token:
        out["X-Amz-Security-Token"] = credentials.token
    host, path, query = _target(url)
    values: dict[str, list[str]] = {}
    for name, value in out.items():
        lower = name.lower()
        if lower not in UNSIGNED_HEADERS:
            values.setdefault(lower, []).append(" ".join(value.split()))
    values.setdefault("host", [host])
    names = sorted(values)
    signed = ";".join(names)
    canonical = "\n".join(
        (
            "POST",
            path,
            query,
            "".join(f"{name}:{','.join(values[name])}\n" for name in names),
            signed,
            hashlib.sha256(payload).hexdigest(),
        )
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join((ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()))
    key = SIGNING_KEYS.get(credentials.secret_key, day, region, service)
    signature = hmac.digest(key, to_sign.encode(), "sha256").hex()
    out["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return out
