"""The secrets broker: a credential reference in, a Secret out, from memory when it can.

Resolvers fetch from their backend (environment, file, Vault); the broker keeps what they return
in process memory only, for at most ``ttl`` seconds, with one fetch in flight per reference.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.errors import SecretUnavailable
from gateway.secrets.refs import CredentialRef
from gateway.secrets.secret import Secret

DEFAULT_TTL_SECONDS = 300.0


class Resolver(Protocol):
    async def fetch(self, ref: CredentialRef) -> Secret: ...

    async def health(self) -> dict[str, object]: ...

    async def close(self) -> None: ...


class EnvResolver:
    async def fetch(self, ref: CredentialRef) -> Secret:
        value = os.environ.get(ref.target)
        if not value:
            raise SecretUnavailable(f"credential {ref} is not set", code="credential_unavailable")
        return Secret(value)

    async def health(self) -> dict[str, object]:
        return {"ok": True}

    async def close(self) -> None:
        return None


class FileResolver:
    async def fetch(self, ref: CredentialRef) -> Secret:
        try:
            with open(ref.target, encoding="utf-8") as handle:
                value = handle.read().strip()
        except OSError as exc:
            raise SecretUnavailable(
                f"credential {ref} could not be read ({exc.strerror})"
            ) from None
        if not value:
            raise SecretUnavailable(f"credential {ref} is empty")
        return Secret(value)

    async def health(self) -> dict[str, object]:
        return {"ok": True}

    async def close(self) -> None:
        return None


@dataclass(slots=True)
class _Entry:
    secret: Secret
    expires_at: float


class SecretBroker:
    def __init__(
        self,
        resolvers: Mapping[str, Resolver] | None = None,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resolvers: dict[str, Resolver] = {"env": EnvResolver(), "file": FileResolver()}
        self._resolvers.update(resolvers or {})
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[CredentialRef, _Entry] = {}
        self._inflight: dict[CredentialRef, asyncio.Future[Secret]] = {}

    def supports(self, ref: CredentialRef) -> bool:
        scheme = "vault" if ref.scheme.startswith("vault") else ref.scheme
        return scheme in self._resolvers

    async def get(self, ref: CredentialRef) -> Secret:
        entry = self._cache.get(ref)
        if entry is not None and entry.expires_at > self._clock():
            return entry.secret
        pending = self._inflight.get(ref)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Secret] = asyncio.get_running_loop().create_future()
        self._inflight[ref] = future
        try:
            secret = await self._resolver(ref).fetch(ref)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        else:
            self._cache[ref] = _Entry(secret, self._clock() + self._ttl)
            future.set_result(secret)
            return secret
        finally:
            del self._inflight[ref]

    def invalidate(self, ref: CredentialRef) -> None:
        """Forget a cached value (the upstream said 401: the key may have been rotated)."""
        self._cache.pop(ref, None)

    def _resolver(self, ref: CredentialRef) -> Resolver:
        scheme = "vault" if ref.scheme.startswith("vault") else ref.scheme
        try:
            return self._resolvers[scheme]
        except KeyError:
            raise SecretUnavailable(
                f"no secret backend is configured for {scheme}: references"
            ) from None

    async def health(self) -> dict[str, object]:
        return {name: await r.health() for name, r in self._resolvers.items()}

    async def close(self) -> None:
        self._cache.clear()
        for resolver in self._resolvers.values():
            await resolver.close()
