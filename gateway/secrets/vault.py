"""The Vault/OpenBao resolver: KV v2 and KV v1 reads with a token kept alive.

hvac is synchronous (requests), so every Vault call runs in a small worker pool of its own, with
the configured timeout on the HTTP call and an outer bound on the wait: a slow or dead Vault never
blocks the event loop, and a full pool makes callers fail closed rather than queue forever. Each
worker thread has its own ``hvac.Client`` (no proxies from the environment, redirects not followed,
so the token is never carried to another host); the token is set for one call and cleared after.

The token is renewed in the background at ``RENEW_AT_FRACTION`` of its lifetime; when it cannot be
renewed any more, or Vault says it is no longer valid (expired, revoked), the resolver logs in
again once and retries once. The readiness check and the renewal log in again as soon as they
find the token gone, without waiting for the next secret fetch to stumble on it. A 403 with a
valid token is a policy problem: reported as such, never retried. Errors are re-raised as
``gateway.secrets.errors`` types whose messages carry no response text from Vault. A TLS failure
(Vault's certificate does not verify, Vault refuses the client certificate, the address's scheme
does not match the listener) is a ``VaultTLSError`` that names the problem: at start-up it is a
configuration error, later it counts as Vault being unavailable.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import hvac  # type: ignore[import-untyped]
import hvac.exceptions  # type: ignore[import-untyped]
import requests

from gateway.config.secrets import Vault
from gateway.logs import REDACTOR, Redactor
from gateway.refs import CredentialRef
from gateway.secrets.errors import AccessDenied, BackendError, BackendUnavailable, SecretMissing
from gateway.secrets.secret import Secret
from gateway.secrets.vault_auth import Grant, Login

log = logging.getLogger(__name__)
T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

RENEW_AT_FRACTION = 2 / 3
MIN_RENEW_DELAY_SECONDS = 1.0
RETRY_RENEW_SECONDS = 5.0
EXPIRY_MARGIN_SECONDS = 1.0
HEALTH_TIMEOUT_SECONDS = 2.0


class VaultSealed(BackendUnavailable):
    """Vault answered 503: sealed, or a standby that does not serve reads."""


class VaultTLSError(BackendUnavailable):
    """No trusted TLS channel to Vault came up (its certificate does not verify, it refused
    ours, or the address's scheme does not match the listener), so Vault served no request."""


_UNAVAILABLE_STATUSES = (
    hvac.exceptions.VaultDown,
    hvac.exceptions.VaultNotInitialized,
    hvac.exceptions.InternalServerError,
    hvac.exceptions.BadGateway,
    hvac.exceptions.RateLimitExceeded,
    hvac.exceptions.UnexpectedError,
)


# What a call in a worker can raise besides our own errors; each is translated, without its text.
CLIENT_ERRORS = (
    BackendError,
    hvac.exceptions.VaultError,
    requests.RequestException,
    OSError,
    ValueError,
    KeyError,
    TypeError,
)


# Go's HTTP server answers plain HTTP on a TLS listener with a 400 and this text.
_HTTP_ON_TLS_LISTENER = "HTTP request to an HTTPS server"


# How a TLS 1.3 listener refuses a client certificate it does not trust: it checks the certificate
# after the client has finished its side of the handshake, sends an alert and closes. The close
# is a reset when our request is still unread, and a reset that arrives before we read the alert
# is all the client sees: EOF or a reset, depending on timing, certificate size and the Python
# version (3.11 reports SSLEOFError where 3.13 reports ConnectionResetError).
_DROPPED = (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError)


def translate(exc: BaseException, what: str, *, client_cert: bool = False) -> BaseException:
    """A Vault client exception as one of ours, without Vault's response text. ``client_cert``
    says a client certificate is configured: then a dropped connection is reported as the
    refusal of that certificate it most likely is, the same way on every Python version."""
    if isinstance(exc, BackendError):
        return exc
    tls = _error_in(exc, (ssl.SSLError,))
    dropped = _error_in(exc, _DROPPED)
    if client_cert and dropped is not None and (tls is None or tls is dropped):
        return VaultTLSError(
            f"{what}: Vault closed the TLS connection ({type(dropped).__name__}), as a listener "
            "that requires client certificates does with one it does not trust; "
            "check secrets.vault.tls.client_cert and client_key"
        )
    if tls is not None:
        return VaultTLSError(f"{what}: {tls_problem(tls)}")
    if isinstance(exc, hvac.exceptions.InvalidRequest) and _HTTP_ON_TLS_LISTENER in str(exc):
        return VaultTLSError(
            f"{what}: Vault's listener speaks TLS but the address is http://; use https:// "
            "(this request went out unencrypted)"
        )
    if isinstance(exc, hvac.exceptions.Forbidden | hvac.exceptions.Unauthorized):
        return AccessDenied(f"{what}: Vault denied permission")
    if isinstance(exc, hvac.exceptions.InvalidPath):
        return SecretMissing(f"{what}: Vault has nothing at that path (or that version)")
    if isinstance(exc, hvac.exceptions.InvalidRequest):
        return AccessDenied(f"{what}: Vault refused the request as invalid")
    if isinstance(exc, hvac.exceptions.VaultDown):
        return VaultSealed(f"{what}: Vault is sealed or not serving")
    if isinstance(exc, _UNAVAILABLE_STATUSES):
        return BackendUnavailable(f"{what}: Vault failed ({type(exc).__name__})")
    if isinstance(exc, requests.RequestException | OSError):
        return BackendUnavailable(f"{what}: Vault could not be reached ({type(exc).__name__})")
    if isinstance(exc, hvac.exceptions.VaultError | ValueError | KeyError | TypeError):
        return BackendUnavailable(f"{what}: unexpected answer from Vault ({type(exc).__name__})")
    return exc


def tls_problem(error: ssl.SSLError) -> str:
    """What went wrong in a TLS handshake with Vault, in the operator's terms. OpenSSL's reason
    and verify message name the certificate problem; they hold no secret."""
    if isinstance(error, ssl.SSLCertVerificationError):
        why = error.verify_message or error.reason
        return (
            f"Vault's TLS certificate could not be verified ({why}); "
            "check secrets.vault.tls.ca_bundle and the host name in secrets.vault.address"
        )
    reason = error.reason or type(error).__name__
    if "ALERT" in reason and ("CERTIFICATE" in reason or "UNKNOWN_CA" in reason):
        return (
            f"Vault refused the TLS client certificate, or needs one ({reason}); "
            "check secrets.vault.tls.client_cert and client_key"
        )
    if reason == "WRONG_VERSION_NUMBER":
        return "Vault does not speak TLS at that address; is it an http:// listener?"
    return f"the TLS handshake with Vault failed ({reason})"


def _error_in(exc: BaseException, kinds: tuple[type[E], ...]) -> E | None:
    """The first exception of one of ``kinds`` inside a requests/urllib3 exception, however
    deeply it is wrapped."""
    todo: list[object] = [exc]
    seen: set[int] = set()
    while todo:
        current = todo.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kinds):
            return current
        todo += [*current.args, getattr(current, "reason", None)]
        todo += [current.__cause__, current.__context__]
    return None


def read_field(client: hvac.Client, ref: CredentialRef) -> Secret:
    if ref.scheme == "vault":
        response = client.secrets.kv.v2.read_secret_version(
            path=ref.target,
            version=ref.version,
            mount_point=ref.mount,
            raise_on_deleted_version=True,
        )
        data = response["data"]["data"]
    else:
        data = client.secrets.kv.v1.read_secret(path=ref.target, mount_point=ref.mount)["data"]
    value = data.get(ref.field) if isinstance(data, dict) else None
    if not isinstance(value, str) or not value:
        raise SecretMissing(f"{ref}: the secret has no non-empty text field {ref.field!r}")
    return Secret(value)


class VaultResolver:
    def __init__(self, settings: Vault, *, redactor: Redactor = REDACTOR) -> None:
        self._settings = settings
        self._mutual_tls = settings.tls.client_cert is not None
        self._login = Login(settings.auth)
        self._redactor = redactor
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="sealgate-vault")
        self._local = threading.local()
        self._grant: Grant | None = None
        self._login_lock: asyncio.Lock | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._probe: asyncio.Task[dict[str, object]] | None = None
        self._closed = False
        # The HTTP call has its own timeout; this bounds the wait for a worker as well.
        self._wait = settings.timeout_seconds * 2 + 1

    # -- the resolver interface ------------------------------------------------------------
    async def fetch(self, ref: CredentialRef) -> Secret:
        grant = await self._current()
        try:
            return await self._call(lambda c: read_field(c, ref), grant.token, str(ref))
        except AccessDenied:
            if await self._token_valid(grant.token):
                raise AccessDenied(f"{ref}: Vault policy denies reading it") from None
        grant = await self.login(stale=grant)
        return await self._call(lambda c: read_field(c, ref), grant.token, str(ref))

    async def health(self) -> dict[str, object]:
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._check())
        try:
            return await asyncio.wait_for(asyncio.shield(self._probe), HEALTH_TIMEOUT_SECONDS)
        except TimeoutError:
            return {"ok": False, "reachable": False, "error": "timeout"}

    async def close(self) -> None:
        """Stop renewing, revoke the token the gateway logged in for, stop the workers."""
        self._closed = True
        for task in (self._renewer, self._probe):
            if task is not None:
                task.cancel()
        grant, self._grant = self._grant, None
        if grant is not None:
            self._redactor.discard(grant.token.reveal())
            if self._settings.auth.revokes:
                try:
                    await self._call(lambda c: c.auth.token.revoke_self(), grant.token, "revoke")
                    log.info("Vault token revoked")
                except BackendError as exc:
                    log.warning("could not revoke the Vault token", extra={"sg_reason": str(exc)})
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- login and renewal -----------------------------------------------------------------
    async def login(self, stale: Grant | None = None) -> Grant:
        """Log in (once, however many callers ask at the same moment). With ``stale``, only if
        the current grant is still that one: someone else may have logged in already."""
        if self._login_lock is None:
            self._login_lock = asyncio.Lock()
        async with self._login_lock:
            current = self._grant
            if current is not None and current is not stale and self._usable(current):
                return current
            method = self._settings.auth.method
            grant = await self._call(self._login, None, f"login ({method})")
            self._install(grant)
            log.info(
                "logged in to Vault",
                extra={"sg_method": method, "sg_ttl": grant.ttl, "sg_renewable": grant.renewable},
            )
            return grant

    def login_blocking(self) -> None:
        """Log in from outside the event loop (start-up), to refuse a wrong configuration early."""
        future = self._pool.submit(self._in_worker, self._login, None)
        what = f"login ({self._settings.auth.method})"
        try:
            grant = future.result(timeout=self._wait)
        except TimeoutError:
            raise BackendUnavailable(f"{what}: Vault did not answer in time") from None
        except CLIENT_ERRORS as exc:
            raise translate(exc, what, client_cert=self._mutual_tls) from None
        self._install(grant)

    def _install(self, grant: Grant) -> None:
        old, self._grant = self._grant, grant
        self._redactor.add(grant.token.reveal())
        if old is not None and old.token != grant.token:
            self._redactor.discard(old.token.reveal())

    def _usable(self, grant: Grant) -> bool:
        expires = grant.expires_at
        return expires is None or _now() < expires - EXPIRY_MARGIN_SECONDS

    async def _current(self) -> Grant:
        grant = self._grant
        if grant is None or not self._usable(grant):
            grant = await self.login(stale=grant)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._keep_fresh())
        return grant

    async def _keep_fresh(self) -> None:
        """Renew the token ahead of expiry; log in again when it cannot be renewed any more."""
        while not self._closed:
            grant = self._grant
            if grant is None or grant.expires_at is None:
                return
            due = grant.obtained_at + grant.ttl * RENEW_AT_FRACTION
            await asyncio.sleep(max(due - _now(), MIN_RENEW_DELAY_SECONDS))
            if self._grant is not grant:
                continue
            try:
                await self._renew_or_login(grant)
            except BackendError as exc:
                log.warning("Vault token renewal failed", extra={"sg_reason": str(exc)})
                await asyncio.sleep(RETRY_RENEW_SECONDS)

    async def _renew_or_login(self, grant: Grant) -> None:
        if grant.renewable:
            try:
                if await self._renewed(grant):
                    return
            except AccessDenied:
                # Vault refused to renew the operator's token: if it is gone (revoked), read the
                # reference again now (an agent may have replaced it), not at the next fetch.
                if await self._token_valid(grant.token):
                    raise
                log.info("the Vault token is no longer valid; logging in again")
                await self.login(stale=grant)
                return
        if self._settings.auth.method != "token":
            await self.login(stale=grant)
        elif grant.expires_at is not None and _now() >= grant.expires_at:
            await self.login(stale=grant)  # re-read the reference: an agent may have replaced it

    async def _renewed(self, grant: Grant) -> bool:
        """Renew the token; False when it was not renewed for long enough, or Vault refused to
        renew a token the gateway logged in for: the identity behind the login may no longer
        hold (kubernetes auth reviews the service-account token again at each renewal), and a
        new login with fresh material is the way on. An operator's token has no such way."""
        try:
            response = await self._call(
                lambda c: c.auth.token.renew_self(), grant.token, "token renewal"
            )
        except AccessDenied as exc:
            if self._settings.auth.method == "token":
                raise
            log.info(
                "Vault refused to renew the token; logging in again", extra={"sg_reason": str(exc)}
            )
            return False
        auth = response.get("auth") if isinstance(response, dict) else None
        ttl = float(auth.get("lease_duration") or 0) if isinstance(auth, dict) else 0.0
        if ttl < grant.ttl * (1 - RENEW_AT_FRACTION) + MIN_RENEW_DELAY_SECONDS:
            return False
        self._grant = Grant(grant.token, ttl, True, _now())
        return True

    async def _token_valid(self, token: Secret, what: str = "token lookup") -> bool:
        try:
            await self._call(lambda c: c.auth.token.lookup_self(), token, what)
        except AccessDenied:
            return False
        return True

    async def _check(self) -> dict[str, object]:
        try:
            grant = await self._current()
            if not await self._token_valid(grant.token, "health"):
                # Revoked or expired early: log in again now, so the replica does not stay
                # unauthenticated until a secret fetch happens to find out.
                log.info("the Vault token is no longer valid; logging in again")
                grant = await self.login(stale=grant)
                await self._call(lambda c: c.auth.token.lookup_self(), grant.token, "health")
        except VaultSealed:
            return {"ok": False, "reachable": True, "sealed": True}
        except BackendUnavailable:
            return {"ok": False, "reachable": False}
        except BackendError:
            return {"ok": False, "reachable": True, "authenticated": False}
        return {"ok": True, "reachable": True, "authenticated": True}

    # -- the worker pool -------------------------------------------------------------------
    async def _call(self, fn: Callable[[hvac.Client], T], token: Secret | None, what: str) -> T:
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._pool, self._in_worker, fn, token)
            return await asyncio.wait_for(future, self._wait)
        except TimeoutError:
            raise BackendUnavailable(f"{what}: Vault did not answer in time") from None
        except RuntimeError:  # the pool was shut down
            raise BackendUnavailable(f"{what}: the Vault client is closed") from None
        except CLIENT_ERRORS as exc:
            raise translate(exc, what, client_cert=self._mutual_tls) from None

    def _in_worker(self, fn: Callable[[hvac.Client], T], token: Secret | None) -> T:
        client = self._client()
        client.token = token.reveal() if token is not None else None
        try:
            return fn(client)
        finally:
            client.token = None

    def _client(self) -> hvac.Client:
        client: hvac.Client | None = getattr(self._local, "client", None)
        if client is None:
            s = self._settings
            tls = s.tls
            session = requests.Session()
            session.trust_env = False  # no proxies or .netrc from the environment
            # On the session, not as hvac.Client arguments: given a session, hvac ignores its own
            # verify= whenever the session's is truthy, and a new session's is True.
            session.verify = tls.ca_bundle or True
            if tls.client_cert and tls.client_key:
                session.cert = (tls.client_cert, tls.client_key)
            client = hvac.Client(
                url=s.address,
                timeout=s.timeout_seconds,
                allow_redirects=False,
                namespace=s.namespace,
                session=session,
            )
            self._local.client = client
        return client


def _now() -> float:
    return time.monotonic()
