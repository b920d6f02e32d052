"""Short-lived OAuth tokens for Vertex AI, minted by google-auth from the deployment's credential.

The credential (fetched by the broker from its ``vault:``/``file:``/``env:`` reference, like any
provider key) is a Google credential JSON:

- ``"type": "service_account"``: a service-account key; google-auth signs a JWT assertion with
  its private key and trades it at the key's ``token_uri`` for an access token;
- ``"type": "external_account"``: workload identity federation; google-auth reads the
  workload's own token (``credential_source`` ``file``, e.g. a Kubernetes projected token, or
  ``url``), exchanges it at Google's STS, and impersonates a service account when the
  configuration says so. An ``executable`` source (a command to run) is refused.

The token is held in memory only, next to the credentials object that refreshes it (google-auth
refreshes 3 min 45 s before expiry); it is never written anywhere. A 401 from Vertex drops it
(``drop``), so the router's refetch-once mints a fresh one from the refetched credential.

google-auth makes its token calls through a ``google.auth.transport.Request``; this module's
``_Transport`` is one that sends them through aiohttp on the gateway's event loop (google-auth's
blocking ``refresh`` runs in a worker thread), so neither ``requests`` nor urllib3 is needed.
Its egress rule is stricter than a deployment's: a token request goes only to Google's token
hosts (``TOKEN_HOSTS``), or to the workload-identity source URL the configuration names; a
loopback or private address only when the deployment sets ``allow_private_network`` (tests and
local emulators). No redirect is followed, no proxy is read from the environment.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import google.auth.exceptions
import google.auth.transport
from google.auth import credentials as google_credentials

from gateway.config import Deployment
from gateway.errors import UpstreamCredentialRejected, UpstreamUnavailable
from gateway.logs import REDACTOR
from gateway.providers.egress import GuardedResolver, is_local_literal
from gateway.secrets.secret import Secret

log = logging.getLogger("sealgate.upstream")

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
TOKEN_HOSTS = frozenset(
    {"oauth2.googleapis.com", "sts.googleapis.com", "iamcredentials.googleapis.com"}
)
TOKEN_TIMEOUT_SECONDS = 10.0
MAX_TOKEN_ANSWER = 64 * 1024


def _transport_error(reason: str) -> Exception:
    return google.auth.exceptions.TransportError(reason)  # type: ignore[no-untyped-call]


class _Response(google.auth.transport.Response):
    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self._status, self._headers, self._data = status, dict(headers), data

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    @property
    def data(self) -> bytes:
        return self._data


class _Transport(google.auth.transport.Request):
    """google-auth's HTTP calls, made by aiohttp on ``loop`` from google-auth's worker thread."""

    def __init__(self, minter: TokenMinter, loop: asyncio.AbstractEventLoop) -> None:
        self._minter = minter
        self._loop = loop

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> _Response:
        call = self._minter.send(url, method, body, dict(headers or {}))
        future = asyncio.run_coroutine_threadsafe(call, self._loop)
        try:
            return future.result(TOKEN_TIMEOUT_SECONDS + 1)
        except google.auth.exceptions.TransportError:
            raise
        except Exception as exc:  # noqa: BLE001 - google-auth expects TransportError
            future.cancel()
            raise _transport_error(type(exc).__name__) from None


def _credentials(info: Any) -> google_credentials.Credentials:
    # Imported here: only a replica with a Vertex deployment pays for them (about 0.1 s).
    from google.auth import identity_pool
    from google.oauth2 import service_account

    kind = info.get("type") if isinstance(info, dict) else None
    if kind == "service_account":
        return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call, no-any-return]
            info, scopes=SCOPES
        )
    if kind == "external_account":
        source = info.get("credential_source")
        if not isinstance(source, dict) or not ({"file", "url"} & set(source)):
            raise ValueError("external_account: only a file or url credential_source is taken")
        return identity_pool.Credentials.from_info(info, scopes=SCOPES)  # type: ignore[no-untyped-call, no-any-return]
    raise ValueError("not a service_account or external_account credential")


def _source_host(info: dict[str, Any]) -> str | None:
    """The host of an external account's ``credential_source.url`` (the workload's own token)."""
    url = (info.get("credential_source") or {}).get("url")
    return urlsplit(url).hostname if isinstance(url, str) else None


class TokenMinter:
    """One deployment's Google credentials and their current tokens, in memory."""

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self._held: dict[bytes, google_credentials.Credentials] = {}
        self._source_hosts: frozenset[str] = frozenset()
        self._lock = asyncio.Lock()
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    @staticmethod
    def _fingerprint(key: Secret) -> bytes:
        return hashlib.sha256(key.reveal().encode()).digest()

    async def token(self, key: Secret) -> Secret:
        """A valid access token for ``key`` (minted or refreshed when it is missing or stale)."""
        fingerprint = self._fingerprint(key)
        held = self._held.get(fingerprint)
        if held is not None and held.valid:
            return Secret(str(held.token))
        async with self._lock:  # one refresh at a time; the others wait for its token
            held = self._held.get(fingerprint)
            if held is None:
                held = self._load(key)
            if not held.valid:
                before = held.token
                await self._refresh(held)
                if before:
                    REDACTOR.discard(str(before))
                REDACTOR.add(str(held.token))  # a live credential: scrubbed wherever it shows
            self._held = {fingerprint: held}  # only the current credential's
            return Secret(str(held.token))

    def drop(self, key: Secret | None) -> None:
        """Forget the token of ``key`` (Vertex refused it)."""
        if key is not None:
            self._held.pop(self._fingerprint(key), None)

    def _load(self, key: Secret) -> google_credentials.Credentials:
        name = self._deployment.name
        try:
            info = json.loads(key.reveal())
            credentials = _credentials(info)
        except (
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
            google.auth.exceptions.GoogleAuthError,
        ):
            # The reason is not repeated: a credential's parse error may quote its content.
            raise UpstreamCredentialRejected(
                f"deployment {name}: its credential is not a Google service-account key or "
                "external-account (workload identity federation) configuration"
            ) from None
        if isinstance(info.get("private_key"), str):
            REDACTOR.add(info["private_key"])
        source = _source_host(info)
        self._source_hosts = frozenset({source}) if source else frozenset()
        return credentials

    async def _refresh(self, credentials: google_credentials.Credentials) -> None:
        name = self._deployment.name
        transport = _Transport(self, asyncio.get_running_loop())
        try:
            await asyncio.to_thread(credentials.refresh, transport)
        except google.auth.exceptions.TransportError:
            raise UpstreamUnavailable(
                f"deployment {name}: Google's token endpoint could not be reached"
            ) from None
        except google.auth.exceptions.GoogleAuthError:
            # RefreshError's text quotes the token endpoint's answer: it is not passed on.
            log.warning("google token refresh refused", extra={"sg_deployment": name})
            raise UpstreamCredentialRejected(
                f"deployment {name}: Google's token endpoint refused the credential"
            ) from None

    def _allowed(self, host: str) -> bool:
        if host in TOKEN_HOSTS or host in self._source_hosts:
            return True
        return self._deployment.allow_private_network and is_local_literal(host)

    def _session(self, host: str) -> aiohttp.ClientSession:
        session = self._sessions.get(host)
        if session is None or session.closed:
            allow_private = self._deployment.allow_private_network or host in self._source_hosts
            connector = aiohttp.TCPConnector(limit=4, resolver=GuardedResolver(host, allow_private))
            session = self._sessions[host] = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=TOKEN_TIMEOUT_SECONDS),
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return session

    async def send(self, url: str, method: str, body: Any, headers: dict[str, str]) -> _Response:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("https", "http") or not self._allowed(host):
            log.warning("egress refused: not a Google token host", extra={"sg_host": host})
            raise _transport_error("token host refused")
        if parts.scheme == "http" and not is_local_literal(host) and host not in self._source_hosts:
            raise _transport_error("token requests need https")
        try:
            async with self._session(host).request(
                method, url, data=body, headers=headers, allow_redirects=False
            ) as response:
                data = await response.content.read(MAX_TOKEN_ANSWER)
                return _Response(response.status, response.headers, data)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _transport_error(type(exc).__name__) from None

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()
        self._held = {}
