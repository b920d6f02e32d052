"""AWS credentials for a Bedrock deployment, held in memory only.

Two sources:

- **an access key pair by reference**: the deployment's ``credential`` (``vault:``, ``file:``,
  ``env:``) names one secret whose value is the pair, as JSON
  ``{"access_key_id": ..., "secret_access_key": ..., "session_token": ...}`` (the session token
  optional; AWS's own ``AccessKeyId`` / ``SecretAccessKey`` / ``SessionToken`` spelling is read
  too). The broker fetches, caches and, after a 401/403, refetches it like every key.
- **web identity** (EKS/IRSA): the token file is read at each exchange (the kubelet rotates it)
  and traded at STS for temporary credentials with AssumeRoleWithWebIdentity. They are kept in
  memory and traded again ``REFRESH_MARGIN`` before they expire (or at half their lifetime when
  that is shorter), once for all waiting requests; after a 401/403 from Bedrock they are dropped
  and traded once more.

The STS call is serialised and its XML answer parsed by botocore (its STS service model, query
protocol), and sent through an aiohttp session pinned to the STS host by the egress guard.
Requests are signed by ``gateway.providers.sigv4`` (held to botocore's ``SigV4Auth`` by the
tests). Neither a key, a session token nor the web identity token is put in a URL, a log line,
an error message or a ``repr`` (``AwsCredentials`` leaves the secret and the token out).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import aiohttp

from gateway.config.aws import WebIdentity
from gateway.errors import SecretUnavailable
from gateway.logs import REDACTOR
from gateway.providers.pool import UpstreamPool
from gateway.providers.sigv4 import SIGNING_KEYS, AwsCredentials
from gateway.secrets.secret import Secret

if TYPE_CHECKING:
    from botocore.model import OperationModel

log = logging.getLogger("sealgate.aws")

SERVICE = "bedrock"
REFRESH_MARGIN = 300.0  # seconds before expiry that temporary credentials are traded again
STS_TIMEOUT = 10.0
MAX_STS_ANSWER = 64 * 1024
_FIELDS = (
    ("access_key_id", "AccessKeyId"),
    ("secret_access_key", "SecretAccessKey"),
    ("session_token", "SessionToken"),
)


def key_pair(secret: Secret) -> AwsCredentials:
    """The access key pair a referenced secret holds; SecretUnavailable when it is not one
    (its content is never repeated)."""
    problem = "the AWS credential secret must be JSON with access_key_id and secret_access_key"
    try:
        document = json.loads(secret.reveal())
    except ValueError:
        raise SecretUnavailable(problem) from None
    if not isinstance(document, dict):
        raise SecretUnavailable(problem)
    found: list[str | None] = []
    for ours, aws in _FIELDS:
        value = document.get(ours, document.get(aws))
        if value is not None and (not isinstance(value, str) or not value):
            raise SecretUnavailable(problem)
        found.append(value)
    key_id, secret_key, token = found
    if key_id is None or secret_key is None:
        raise SecretUnavailable(problem)
    _redact(secret_key, token)  # the broker redacts the whole document; these are its parts
    return AwsCredentials(key_id, secret_key, token)


def _redact(*values: str | None) -> None:
    for value in values:
        if value is not None:
            REDACTOR.add(value)


@dataclass(frozen=True, slots=True)
class Temporary:
    credentials: AwsCredentials
    refresh_at: float  # monotonic time


class WebIdentityCredentials:
    """Temporary credentials from STS for a web identity token, in memory, refreshed ahead of
    their expiry; one exchange at a time."""

    def __init__(
        self,
        settings: WebIdentity,
        endpoint: str,
        allow_private_network: bool,
        clock: Any = time.monotonic,
        pool: UpstreamPool | None = None,
        name: str = "",
    ) -> None:
        self._settings = settings
        self._endpoint = endpoint.rstrip("/") + "/"
        self._allow_private = allow_private_network
        self._clock = clock
        self._held: Temporary | None = None
        self._lock = asyncio.Lock()
        self._own = pool is None  # without the gateway's pool (a test): one of its own
        self._pool = pool if pool is not None else UpstreamPool()
        self._name = name
        self.exchanges = 0  # how many times STS was asked (for tests and metrics)

    async def get(self) -> AwsCredentials:
        held = self._held
        if held is not None and self._clock() < held.refresh_at:
            return held.credentials
        async with self._lock:
            held = self._held
            if held is None or self._clock() >= held.refresh_at:
                fresh = await self._exchange()
                self._forget(held)
                held = self._held = fresh
            return held.credentials

    def invalidate(self, seen: AwsCredentials) -> None:
        """Drop the held credentials if they are still the ones Bedrock refused."""
        if self._held is not None and self._held.credentials == seen:
            self._forget(self._held)
            self._held = None

    @staticmethod
    def _forget(held: Temporary | None) -> None:
        if held is not None:
            REDACTOR.discard(held.credentials.secret_key)
            SIGNING_KEYS.discard(held.credentials.secret_key)
            REDACTOR.discard(held.credentials.token or "")

    async def close(self) -> None:
        """Close the session if it is this object's own (the gateway's pool closes its own)."""
        if self._own:
            await self._pool.close()

    def _http(self) -> aiohttp.ClientSession:
        host = urlsplit(self._endpoint).hostname or ""
        return self._pool.pinned(self._name, host, self._allow_private, STS_TIMEOUT)

    async def _exchange(self) -> Temporary:
        settings = self._settings
        try:
            token = Path(settings.token_file).read_text("utf-8").strip()
        except OSError as exc:
            raise SecretUnavailable(
                f"the web identity token file cannot be read: {exc.strerror}"
            ) from None
        if not token:
            raise SecretUnavailable("the web identity token file is empty")
        REDACTOR.add(token)  # the kubelet rotates it: each one read is redacted while we run
        operation = _sts_operation()
        params = {
            "RoleArn": settings.role_arn,
            "RoleSessionName": settings.session_name,
            "WebIdentityToken": token,
            "DurationSeconds": settings.duration_seconds,
        }
        from botocore.parsers import QueryParser  # botocore only for web identity (idle RSS)
        from botocore.serialize import QuerySerializer

        serialized = QuerySerializer().serialize_to_request(params, operation)
        body = urlencode(serialized["body"]).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        self.exchanges += 1
        try:
            async with self._http().post(
                self._endpoint, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                answer = await response.content.read(MAX_STS_ANSWER)
                answer_headers = dict(response.headers)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("STS could not be reached", extra={"sg_error": type(exc).__name__})
            raise SecretUnavailable("STS could not be reached for the web identity") from None
        parsed = QueryParser().parse(
            {"status_code": status, "headers": answer_headers, "body": answer},
            operation.output_shape,
        )
        if status != 200 or "Error" in parsed:
            code = str((parsed.get("Error") or {}).get("Code") or status)
            log.warning("STS refused the web identity", extra={"sg_error": code[:64]})
            raise SecretUnavailable(f"STS refused the web identity ({code[:64]})")
        found = parsed.get("Credentials") or {}
        try:
            credentials = AwsCredentials(
                found["AccessKeyId"], found["SecretAccessKey"], found["SessionToken"]
            )
            expires: datetime = found["Expiration"]
        except KeyError:
            raise SecretUnavailable("STS answered without credentials") from None
        _redact(credentials.secret_key, credentials.token)
        lifetime = (expires.astimezone(UTC) - datetime.now(UTC)).total_seconds()
        margin = min(REFRESH_MARGIN, lifetime / 2)
        return Temporary(credentials, self._clock() + max(0.0, lifetime - margin))


_OPERATION: OperationModel | None = None


def _sts_operation() -> OperationModel:
    """botocore's model of AssumeRoleWithWebIdentity (loaded once, from botocore's data; botocore
    is imported by the first exchange, so a gateway without web identity never loads it)."""
    global _OPERATION
    if _OPERATION is None:
        from botocore.session import get_session

        model = get_session().get_service_model("sts")
        _OPERATION = model.operation_model("AssumeRoleWithWebIdentity")
    return _OPERATION
