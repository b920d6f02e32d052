"""Routing: a public model name to a deployment, with retries, fallbacks and cooldowns.

Each model group is tried in turn, starting from the next deployment in round-robin order and
leaving deployments in cooldown (after a retryable failure) for last. A retryable failure moves on
to the next attempt, on another deployment (``retries`` of them at most in a group); any other
failure is final. After the group, the configured fallback groups are tried the same way. A
401/403 from the provider drops the cached credential and refetches it once (the key may have
been rotated) before counting as a failure.

Within one request nothing is waited for twice: a deployment that failed is not tried again
(it is in cooldown), a credential that could not be obtained is not asked for again for another
deployment that shares it, and all attempts share one deadline, the first deployment's
``timeouts.total`` from when routing began: a later attempt gets what is left of it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway import tracing
from gateway.config import Deployment
from gateway.config import Router as RouterSettings
from gateway.errors import (
    GatewayError,
    ModelNotFound,
    SecretUnavailable,
    UpstreamCredentialRejected,
    UpstreamTimeout,
)
from gateway.metrics import ATTEMPT_SECONDS, UPSTREAM_FAILURES
from gateway.providers.base import Adapter
from gateway.providers.pool import UpstreamPool
from gateway.providers.registry import adapter_for
from gateway.refs import CredentialRef
from gateway.secrets.broker import SecretBroker
from gateway.secrets.secret import Secret
from gateway.values import Reply, Stream

log = logging.getLogger(__name__)
T = TypeVar("T")

# Readiness waits this long at most for the credentials it has not got in memory.
CREDENTIALS_WAIT_SECONDS = 2.0

# Asked before each deployment is tried: None to go ahead, or the error that says why this
# deployment is skipped (its own limits are full). Skipping is not a failure: no cooldown.
Gate = Callable[[Deployment], Awaitable[GatewayError | None]]


@dataclass(slots=True)
class Route:
    deployment: Deployment
    adapter: Adapter
    credential: CredentialRef | None
    cooldown_until: float = 0.0


Plan = list[Route]


def routes_for(deployments: list[Deployment], pool: UpstreamPool) -> list[Route]:
    """One route per deployment, with the adapter its provider makes (``providers.registry``)."""
    return [Route(d, adapter_for(d, pool), d.credential_ref) for d in deployments]


class Router:
    def __init__(
        self,
        settings: RouterSettings,
        routes: list[Route],
        broker: SecretBroker,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._broker = broker
        self._clock = clock
        self._retries = settings.retries
        self._cooldown = settings.cooldown_seconds
        self._fallbacks = settings.fallbacks
        self.groups: dict[str, list[Route]] = {}
        for route in routes:
            self.groups.setdefault(route.deployment.model, []).append(route)
        self._turn = {name: itertools.count() for name in self.groups}

    def models(self) -> list[str]:
        return sorted(self.groups)

    def credentials(self) -> list[CredentialRef]:
        return [r.credential for g in self.groups.values() for r in g if r.credential]

    async def chat(
        self, model: str, body: dict[str, Any], gate: Gate | None = None, plan: Plan | None = None
    ) -> tuple[Reply, Deployment]:
        return await self._run(model, lambda r, k: r.adapter.chat(body, k), gate, plan)

    async def chat_stream(
        self, model: str, body: dict[str, Any], gate: Gate | None = None, plan: Plan | None = None
    ) -> tuple[Stream, Deployment]:
        return await self._run(model, lambda r, k: r.adapter.chat_stream(body, k), gate, plan)

    async def embeddings(
        self, model: str, body: dict[str, Any], gate: Gate | None = None, plan: Plan | None = None
    ) -> tuple[Reply, Deployment]:
        return await self._run(
            model, lambda r, k: r.adapter.embeddings(body, k), gate, plan, "embeddings"
        )

    def plan(self, model: str) -> Plan:
        """The order this request will try the model's deployments in, chosen now: governance
        reserves the first one's limits together with the request's own (one counter round
        trip instead of two), and the call then follows the same order."""
        return self._ordered(model)

    def _ordered(self, model: str) -> list[Route]:
        group = self.groups[model]
        start = next(self._turn[model]) % len(group)
        rotated = group[start:] + group[:start]
        now = self._clock()
        return [r for r in rotated if r.cooldown_until <= now] + [
            r for r in rotated if r.cooldown_until > now
        ]

    async def _run(
        self,
        model: str,
        call: Callable[[Route, Secret | None], Awaitable[T]],
        gate: Gate | None = None,
        plan: Plan | None = None,
        operation: str = "chat",
    ) -> tuple[T, Deployment]:
        if model not in self.groups:
            raise ModelNotFound(f"model {model!r} does not exist", param="model")
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        last: GatewayError | None = None
        unobtainable: set[CredentialRef] = set()
        for name in [model, *self._fallbacks.get(model, [])]:
            routes = plan if plan is not None and name == model else self._ordered(name)
            if deadline is None:
                deadline = loop.time() + routes[0].deployment.timeouts.total
            tries = 0
            for route in routes:
                if tries > self._retries:
                    break
                if route.credential is not None and route.credential in unobtainable:
                    continue  # asking again would fail, or wait, the same way
                if gate is not None:
                    skipped = await gate(route.deployment)
                    if skipped is not None:
                        last = skipped
                        continue
                tries += 1
                limit = asyncio.timeout_at(deadline)
                began = time.perf_counter()
                deployment = route.deployment
                attempt = tracing.attempt_span(
                    operation, deployment.provider, _upstream_model(deployment), deployment.name
                )
                try:
                    with attempt as span:
                        try:
                            async with limit:
                                answer = await self._call(route, call)
                        except GatewayError as failure:
                            tracing.failed(span, failure.code)
                            raise
                        except TimeoutError:
                            tracing.failed(span, "upstream_timeout")
                            raise
                    _attempted(route, "ok", began)
                    return answer, route.deployment
                except TimeoutError:
                    if not limit.expired():
                        raise
                    exc = UpstreamTimeout(
                        f"deployment {route.deployment.name} did not answer in time"
                    )
                    self._failed(route, exc, began)
                    raise exc from None  # the request's time is up: no attempt after this
                except GatewayError as exc:
                    self._failed(route, exc, began)
                    if not exc.retryable:
                        raise
                    last = exc
                    if isinstance(exc, SecretUnavailable) and route.credential is not None:
                        unobtainable.add(route.credential)
        assert last is not None
        raise last

    def _failed(self, route: Route, exc: GatewayError, began: float) -> None:
        UPSTREAM_FAILURES[(("deployment", route.deployment.name), ("code", exc.code))] += 1
        _attempted(route, exc.code, began)
        if not exc.retryable:
            return
        route.cooldown_until = self._clock() + self._cooldown
        if not exc.logged:
            log.warning(
                "deployment failed",
                extra={"sg_deployment": route.deployment.name, "sg_error": exc.code},
            )

    async def credentials_health(self) -> dict[str, object]:
        """The readiness check of the credentials: ``ok`` when every model has a deployment
        whose credential this replica can obtain now (held in memory, or fetched within
        ``CREDENTIALS_WAIT_SECONDS``). A model without one fails every request with a 503, so
        the replica is not ready; ``unavailable`` names those models (never a reference)."""
        refs = sorted(
            {r.credential for g in self.groups.values() for r in g if r.credential}, key=str
        )
        if not refs:
            return {"ok": True}

        async def obtainable(ref: CredentialRef) -> bool:
            try:
                await self._broker.get(ref)
            except SecretUnavailable:
                return False
            return True

        try:
            async with asyncio.timeout(CREDENTIALS_WAIT_SECONDS):
                found = dict(zip(refs, await asyncio.gather(*map(obtainable, refs)), strict=True))
        except TimeoutError:
            return {"ok": False, "error": "timeout"}
        unavailable = sorted(
            model
            for model, routes in self.groups.items()
            if not any(r.credential is None or found[r.credential] for r in routes)
        )
        if unavailable:
            return {"ok": False, "unavailable": unavailable}
        return {"ok": True}

    async def _call(self, route: Route, call: Callable[[Route, Secret | None], Awaitable[T]]) -> T:
        ref = route.credential
        key = await self._broker.get(ref) if ref is not None else None
        try:
            return await call(route, key)
        except UpstreamCredentialRejected:
            if ref is None:
                raise
            self._broker.invalidate(ref, key)
            return await call(route, await self._broker.get(ref))


def _attempted(route: Route, outcome: str, began: float) -> None:
    """One upstream attempt in ``sealgate_upstream_attempt_duration_seconds``: ``ok`` or the
    error code (its class: timeout, unavailable, rate limited, ...)."""
    labels = (("deployment", route.deployment.name), ("outcome", outcome))
    ATTEMPT_SECONDS.observe(labels, time.perf_counter() - began)


def _upstream_model(deployment: Deployment) -> str:
    return deployment.upstream_model or deployment.model
