"""The secrets broker: a credential reference in, a Secret out, from memory when it can.

Resolvers fetch from their backend (environment, file, Vault); the broker keeps what they return
in process memory only:

- a key is served from memory for ``ttl`` seconds after it was fetched; in the last
  ``REFRESH_AHEAD_FRACTION`` of that time a request that finds it starts a refresh in the
  background and is served the cached key at once (the hot path never waits on Vault when warm);
- one fetch is in flight per reference: a burst on a cold cache makes one backend read;
- when the backend is unavailable, an expired key keeps serving for at most ``stale`` more seconds
  (0 by default: an explicit, bounded trade of freshness for availability), then requests fail
  closed with a 503 whose message names no path and no secret;
- a key the provider refused (401) is dropped and fetched again (``invalidate``); a key the
  backend says is gone or forbidden is dropped, never served stale;
- expired keys are dropped by a sweeper even when no request comes, and every key held is
  registered with the log redactor while it is held;
- a failed fetch is logged once, with its reason, however many requests waited for it; the
  503 they get says it was logged (``logged``), so nothing above logs it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway import tracing
from gateway.errors import SecretUnavailable
from gateway.logs import REDACTOR, Redactor
from gateway.metrics import SECRET_FETCH_SECONDS, SECRET_FETCHES
from gateway.refs import CredentialRef
from gateway.secrets.errors import BackendError, BackendUnavailable
from gateway.secrets.local import EnvResolver, FileResolver
from gateway.secrets.secret import Secret

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 300.0
REFRESH_AHEAD_FRACTION = 0.2
REFRESH_BACKOFF_SECONDS = 5.0
MAX_SWEEP_INTERVAL_SECONDS = 30.0
UNAVAILABLE_MESSAGE = "the provider credential is unavailable; try again later"


class Resolver(Protocol):
    async def fetch(self, ref: CredentialRef) -> Secret: ...

    async def health(self) -> dict[str, object]: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Entry:
    secret: Secret
    expires_at: float
    retry_at: float = 0.0  # after a failed background refresh, not before this time


def backend_of(ref: CredentialRef) -> str:
    return "vault" if ref.scheme.startswith("vault") else ref.scheme


class SecretBroker:
    def __init__(
        self,
        resolvers: Mapping[str, Resolver] | None = None,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        stale: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        redactor: Redactor = REDACTOR,
    ) -> None:
        if ttl <= 0 or stale < 0:
            raise ValueError("ttl must be positive and stale not negative")
        self._resolvers: dict[str, Resolver] = {"env": EnvResolver(), "file": FileResolver()}
        self._resolvers.update(resolvers or {})
        self._ttl = ttl
        self._stale = stale
        self._refresh_after = ttl * (1 - REFRESH_AHEAD_FRACTION)
        self._clock = clock
        self._redactor = redactor
        self._cache: dict[CredentialRef, _Entry] = {}
        self._inflight: dict[CredentialRef, asyncio.Task[Secret]] = {}
        self._reported: weakref.WeakSet[asyncio.Task[Secret]] = weakref.WeakSet()
        self._sweeper: asyncio.Task[None] | None = None

    def supports(self, ref: CredentialRef) -> bool:
        return backend_of(ref) in self._resolvers

    def use(self, backend: str, resolver: Resolver) -> None:
        """Serve ``backend`` references with ``resolver`` from now on (a reload's environment);
        keys already held stay cached until their TTL."""
        self._resolvers[backend] = resolver

    def cached(self) -> int:
        """How many keys are held in memory right now (for tests and metrics: no values)."""
        return len(self._cache)

    async def get(self, ref: CredentialRef) -> Secret:
        entry = self._cache.get(ref)
        if entry is not None:
            now = self._clock()
            if now < entry.expires_at:
                if now >= entry.expires_at - self._ttl + self._refresh_after:
                    self._refresh_behind(ref, entry, now)
                return entry.secret
            if now < entry.expires_at + self._stale:
                self._refresh_behind(ref, entry, now)
                return entry.secret
            self._drop(ref)
        self._ensure_sweeper()
        task = self._fetch(ref)
        try:
            return await asyncio.shield(task)
        except BackendUnavailable as exc:
            self._report(task, logging.WARNING, "secret backend unavailable", ref, exc)
        except BackendError as exc:
            message = "credential cannot be obtained: check the configuration"
            self._report(task, logging.ERROR, message, ref, exc)
        raise SecretUnavailable(UNAVAILABLE_MESSAGE, logged=True)

    def invalidate(self, ref: CredentialRef, rejected: Secret | None = None) -> None:
        """Forget a cached key (the provider said 401: it may have been rotated). With
        ``rejected``, only if the cached key is still that one, so a burst of 401s for the old
        key does not throw away the new one."""
        entry = self._cache.get(ref)
        if entry is not None and (rejected is None or entry.secret == rejected):
            self._drop(ref)

    def sweep(self) -> None:
        """Drop every key past its TTL and stale window."""
        now = self._clock()
        for ref in [r for r, e in self._cache.items() if now >= e.expires_at + self._stale]:
            self._drop(ref)

    async def health(self) -> dict[str, object]:
        return {name: await r.health() for name, r in self._resolvers.items()}

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._inflight.values()):
            task.cancel()
        for ref in list(self._cache):
            self._drop(ref)
        for resolver in self._resolvers.values():
            await resolver.close()

    # -- internals --------------------------------------------------------------------------
    def _fetch(self, ref: CredentialRef) -> asyncio.Task[Secret]:
        task = self._inflight.get(ref)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._load(ref))
            self._inflight[ref] = task
            task.add_done_callback(lambda done: self._settled(ref, done))
        return task

    def _settled(self, ref: CredentialRef, task: asyncio.Task[Secret]) -> None:
        if self._inflight.get(ref) is task:
            del self._inflight[ref]
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter re-raises it on its own

    async def _load(self, ref: CredentialRef) -> Secret:
        try:
            resolver = self._resolvers[backend_of(ref)]
        except KeyError:
            raise BackendError(f"{ref}: no secret backend is configured for it") from None
        backend = (("backend", backend_of(ref)),)
        began = time.perf_counter()
        where = {"sealgate.secret.backend": backend_of(ref)}
        with tracing.span("sealgate.secret_fetch", attributes=where) as span:
            try:
                secret = await resolver.fetch(ref)
            except BaseException as exc:
                SECRET_FETCHES[(*backend, ("outcome", _outcome(exc)))] += 1
                tracing.failed(span, _outcome(exc))
                raise
            finally:
                SECRET_FETCH_SECONDS.observe(backend, time.perf_counter() - began)
        SECRET_FETCHES[(*backend, ("outcome", "ok"))] += 1
        if not secret:
            raise BackendError(f"{ref}: the backend returned an empty value")
        old = self._cache.get(ref)
        self._cache[ref] = _Entry(secret, self._clock() + self._ttl)
        self._redactor.add(secret.reveal())
        if old is not None and old.secret != secret:
            self._redactor.discard(old.secret.reveal())
        return secret

    def _report(
        self,
        task: asyncio.Task[Secret],
        level: int,
        message: str,
        ref: CredentialRef,
        error: BaseException,
    ) -> None:
        """Log a failed fetch once, whoever waited for it (requests, or a background refresh)."""
        if task in self._reported:
            return
        self._reported.add(task)
        log.log(level, message, extra={"sg_credential": str(ref), "sg_reason": str(error)})

    def _refresh_behind(self, ref: CredentialRef, entry: _Entry, now: float) -> None:
        if ref in self._inflight or now < entry.retry_at:
            return
        task = self._fetch(ref)

        def note_failure(done: asyncio.Task[Secret]) -> None:
            error = None if done.cancelled() else done.exception()
            if error is None:
                return
            if not isinstance(error, BackendUnavailable):
                # Vault answered, and said the secret is gone or no longer ours: stop using it.
                if self._cache.get(ref) is entry:
                    self._drop(ref)
                message = "credential refresh refused; the cached key is dropped"
                self._report(done, logging.ERROR, message, ref, error)
                return
            entry.retry_at = self._clock() + min(REFRESH_BACKOFF_SECONDS, self._ttl / 10)
            message = "background refresh of a credential failed; serving the cached key"
            self._report(done, logging.WARNING, message, ref, error)

        task.add_done_callback(note_failure)

    def _drop(self, ref: CredentialRef) -> None:
        entry = self._cache.pop(ref, None)
        if entry is not None:
            self._redactor.discard(entry.secret.reveal())

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            interval = min(self._ttl / 2, MAX_SWEEP_INTERVAL_SECONDS)
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_every(interval))

    async def _sweep_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.sweep()


def _outcome(exc: BaseException) -> str:
    """A failed fetch's class, for the metric (never its message)."""
    if isinstance(exc, BackendUnavailable):
        return "unavailable"
    if isinstance(exc, BackendError):
        return "error"
    return "cancelled" if isinstance(exc, asyncio.CancelledError) else "failed"
