"""Routing: a public model name to a deployment, with a strategy, retries, fallbacks by error
class and a circuit breaker per deployment.

Each model group puts its deployments in the order its strategy says (``strategies``), behind
them those whose breaker is open (``breaker``). A retryable failure moves on to the next attempt,
on another deployment (``retries`` of them at most in a group), after a jittered backoff
(``retries``); an upstream that said ``Retry-After`` within the cap is asked again once it has
waited that long. Any other failure is final, except a context window or content policy refusal
when the group names fallbacks for that class. When the group fails, the fallback groups for the
failure's class are tried the same way. A 401/403 from the provider drops the cached credential
and refetches it once (the key may have been rotated) before counting as a failure.

Within one request nothing is waited for twice: a deployment that failed is not tried again
(except after its own Retry-After), a credential that could not be obtained is not asked for
again for another deployment that shares it, and all attempts, waits included, share one
deadline, the first deployment's ``timeouts.total`` from when routing began: a later attempt gets
what is left of it, and a wait that would end past it is not started. A stream is handed to the
client once its status was checked; nothing after that is retried (its first byte has gone out).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from gateway import tracing
from gateway.config import Deployment
from gateway.config.governance import Governance as GovernanceSettings
from gateway.config.routing import ERROR_CLASSES
from gateway.config.routing import Router as RouterSettings
from gateway.errors import (
    GatewayError,
    InvalidRequest,
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
from gateway.routing.breaker import Breakers
from gateway.routing.health import EMBEDDINGS_PROBE, PROBE, RERANK_PROBE, Probes
from gateway.routing.retries import backoff, error_class, retry_after
from gateway.routing.stats import Stats, TimedStream
from gateway.routing.strategies import Order, strategy
from gateway.secrets.broker import SecretBroker
from gateway.secrets.secret import Secret
from gateway.store.keys import KeyRecord
from gateway.values import Reply, Stream, Usage

log = logging.getLogger(__name__)
T = TypeVar("T")

# Readiness waits this long at most for the credentials it has not got in memory.
CREDENTIALS_WAIT_SECONDS = 2.0
# The strategies compare prices on this much usage.
COST_SAMPLE = Usage(1000, 1000)

# Asked before each deployment is tried: None to go ahead, or the error that says why this
# deployment is skipped (its own limits are full). Skipping is not a failure: the breaker does not
# count it.
Gate = Callable[[Deployment], Awaitable[GatewayError | None]]


@dataclass(slots=True)
class Route:
    deployment: Deployment
    adapter: Adapter
    credential: CredentialRef | None
    stats: Stats = field(default_factory=Stats)


class Plan(list[Route]):
    """The order one request tries its model's deployments in, and the key's own fallbacks by
    error class (its metadata's ``fallbacks``), which stand in for the group's for that class."""

    fallbacks: dict[str, list[str]] | None = None
    # The models the key may use: the group's fallbacks are tried only where it may (a key
    # scoped to one model is never answered by a model it could not have asked for).
    allows: Callable[[str], bool] | None = None


def routes_for(deployments: list[Deployment], pool: UpstreamPool) -> list[Route]:
    """One route per deployment, with the adapter its provider makes (``providers.registry``)."""
    return [Route(d, adapter_for(d, pool), d.credential_ref) for d in deployments]


def build_router(
    settings: RouterSettings,
    deployments: list[Deployment],
    pool: UpstreamPool,
    broker: SecretBroker,
    governance: GovernanceSettings,
    cost: Callable[[Deployment, Usage], int],
    breakers: Breakers,
) -> Router:
    """The router of the composition root (start-up and reload): the deployments' own limits
    and prices come from governance, for the ``usage`` and ``lowest_cost`` strategies."""
    limits = {name: (g.rpm, g.tpm) for name, g in governance.deployments.items()}
    breakers.configure(settings.breaker, settings.cooldown_seconds)
    routes = routes_for(deployments, pool)
    return Router(settings, routes, broker, cost=cost, limits=limits, breakers=breakers)


class _Expired(Exception):
    """The request's deadline passed during an attempt: no attempt, and no fallback, after it."""

    def __init__(self, error: UpstreamTimeout) -> None:
        self.error = error


@dataclass(slots=True)
class _Request:
    """What one request's attempts share."""

    deadline: float
    stream: bool
    operation: str = "chat"  # the GenAI operation its attempt spans name
    unobtainable: set[CredentialRef] = field(default_factory=set)
    refusals: set[int] = field(default_factory=set)  # ids of the gate's refusals


class Router:
    def __init__(
        self,
        settings: RouterSettings,
        routes: list[Route],
        broker: SecretBroker,
        clock: Callable[[], float] = time.monotonic,
        *,
        cost: Callable[[Deployment, Usage], int] | None = None,
        limits: Mapping[str, tuple[int | None, int | None]] | None = None,
        rng: random.Random | None = None,
        breakers: Breakers | None = None,
    ) -> None:
        """``cost`` prices a deployment's usage (governance's price table), for ``lowest_cost``;
        ``limits`` are the deployments' own (RPM, TPM) by name, for ``usage``; ``breakers`` are
        the process's (kept across reloads, shared through Redis when it is configured)."""
        self._broker = broker
        self._clock = clock
        self._settings = settings
        self._rng = rng or random.Random()  # noqa: S311 (spreading load, not a secret)
        self.breakers = breakers or Breakers(settings.breaker, settings.cooldown_seconds, clock)
        self.breakers.track([r.deployment.name for r in routes])
        self.groups: dict[str, list[Route]] = {}
        for route in routes:
            d = route.deployment
            route.stats.weight = d.weight
            route.stats.cost = float(cost(d, COST_SAMPLE)) if cost is not None else 0.0
            route.stats.rpm_limit, route.stats.tpm_limit = (limits or {}).get(d.name, (None, None))
            self.groups.setdefault(d.model, []).append(route)
        self._turn = {name: itertools.count() for name in self.groups}
        self._wildcards = [name for name in self.groups if name.endswith("*")]
        self._by_name = {r.deployment.name: r for r in routes}
        self.probes: Probes | None = None
        if settings.health_checks is not None:
            self.probes = Probes(
                settings.health_checks, list(self._by_name), self._probe, self._mark_health
            )
        self._orders: dict[str, Order] = {}
        for name in self.groups:
            group = settings.groups.get(name)
            self._orders[name] = (
                strategy(group.strategy, group.exploration, self._rng)
                if group is not None
                else strategy("round_robin", 0.0)
            )

    def models(self) -> list[str]:
        """Every public name: the groups', wildcards included, and the aliases (issue 14)."""
        return sorted({*self.groups, *self._settings.aliases})

    # -- aliases and wildcards (issue 14) ---------------------------------------------------
    def resolve(self, requested: str) -> tuple[str, str] | None:
        """The model a requested name means and the group that serves it: an alias is replaced
        by its target; a name no group has is served by the wildcard group (``anthropic/*``)
        with the longest prefix it starts with. None when nothing serves it."""
        model = self._settings.aliases.get(requested, requested)
        if model in self.groups:
            return model, model
        best: str | None = None
        for group in self._wildcards:
            matches = model.startswith(group[:-1]) and len(model) > len(group) - 1
            if matches and (best is None or len(group) > len(best)):
                best = group
        return (model, best) if best is not None else None

    def aliases(self) -> dict[str, str]:
        return dict(self._settings.aliases)

    async def run(
        self,
        model: str,
        call: Callable[[Route, Secret | None], Awaitable[T]],
        gate: Gate | None,
        plan: Plan | None,
        stream: bool,
    ) -> tuple[T, Deployment]:
        """Route a call the caller makes of each deployment's adapter (the Responses route
        picks, per deployment, between its pass-through and the chat translation)."""
        return await self._run(model, call, gate, plan, stream)

    def credentials(self) -> list[CredentialRef]:
        return [r.credential for g in self.groups.values() for r in g if r.credential]

    async def chat(
        self, model: str, body: dict[str, Any], gate: Gate | None = None, plan: Plan | None = None
    ) -> tuple[Reply, Deployment]:
        return await self._run(model, lambda r, k: r.adapter.chat(body, k), gate, plan, False)

    async def chat_stream(
        self, model: str, body: dict[str, Any], gate: Gate | None = None, plan: Plan | None = None
    ) -> tuple[Stream, Deployment]:
        return await self._run(model, lambda r, k: r.adapter.chat_stream(body, k), gate, plan, True)

    async def messages(
        self,
        model: str,
        call: Callable[[Route, Secret | None], Awaitable[T]],
        gate: Gate | None = None,
        plan: Plan | None = None,
        stream: bool = False,
        operation: str = "chat",
    ) -> tuple[T, Deployment]:
        """An Anthropic Messages call (or its count_tokens), with the same retries, fallbacks
        and breakers as chat: ``call`` says how each deployment serves it (passed through to an
        Anthropic deployment, translated for the others: ``gateway.api.messages``)."""
        return await self._run(model, call, gate, plan, stream, operation)

    async def embeddings(
        self, model: str, body: dict[str, Any], gate: Gate | None = None, plan: Plan | None = None
    ) -> tuple[Reply, Deployment]:
        return await self._run(
            model, lambda r, k: r.adapter.embeddings(body, k), gate, plan, False, "embeddings"
        )

    async def rerank(
        self, model: str, body: dict[str, Any], gate: Gate | None = None, plan: Plan | None = None
    ) -> tuple[Reply, Deployment]:
        """Cohere's rerank (issue 15): served by the deployments whose adapter has one."""

        async def call(route: Route, key: Secret | None) -> Reply:
            rerank = getattr(route.adapter, "rerank", None)
            if rerank is None:
                raise InvalidRequest(f"model {model!r} does not serve rerank", param="model")
            reply: Reply = await rerank(body, key)
            return reply

        return await self._run(model, call, gate, plan, False, "rerank")

    def plan(self, model: str, stream: bool = False, key: KeyRecord | None = None) -> Plan:
        """The order this request will try the model's deployments in, chosen now: governance
        reserves the first one's limits together with the request's own (one counter round
        trip instead of two), and the call then follows the same order. With ``key``, its own
        fallbacks come along (InvalidRequest when its metadata names them wrongly)."""
        planned = Plan(self._ordered(model, stream))
        if key is not None:
            planned.allows = key.allows
            if "fallbacks" in key.metadata:
                planned.fallbacks = self._key_fallbacks(key)
        return planned

    def _key_fallbacks(self, key: KeyRecord) -> dict[str, list[str]]:
        """A key's ``metadata.fallbacks``: {error class: [model, ...]}, each model one this
        router serves and the key may use."""
        given = key.metadata["fallbacks"]
        where = "this key's metadata.fallbacks"
        if not isinstance(given, dict):
            raise InvalidRequest(f"{where} must map error classes to lists of models")
        found: dict[str, list[str]] = {}
        for kind, models in given.items():
            if kind not in ERROR_CLASSES:
                raise InvalidRequest(f"{where} names {kind!r}; known: {', '.join(ERROR_CLASSES)}")
            if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
                raise InvalidRequest(f"{where}.{kind} must be a list of model names")
            for name in models:
                if name not in self.groups or not key.allows(name):
                    raise InvalidRequest(
                        f"{where}.{kind} names model {name!r}, which this key cannot use"
                    )
            found[kind] = models
        return found

    def _ordered(self, model: str, stream: bool) -> list[Route]:
        group = self.groups[model]
        start = next(self._turn[model]) % len(group)
        rotated = group[start:] + group[:start]
        if len(rotated) > 1:
            minute = int(self._clock() // 60)
            rotated = [rotated[i] for i in self._orders[model](rotated, stream, minute)]

        def available(route: Route) -> bool:
            return route.stats.healthy and self.breakers.available(route.deployment.name)

        return [r for r in rotated if available(r)] + [r for r in rotated if not available(r)]

    async def _probe(self, name: str) -> None:
        route = self._by_name[name]
        model = {"model": route.deployment.model}
        if route.deployment.mode == "embeddings":
            embed = {**model, **EMBEDDINGS_PROBE}
            await self._call(route, lambda r, k: r.adapter.embeddings(embed, k))
        elif route.deployment.mode == "rerank":
            rank = {**model, **RERANK_PROBE}
            await self._call(route, lambda r, k: getattr(r.adapter, "rerank")(rank, k))  # noqa: B009
        else:
            chat = {**model, **PROBE}
            await self._call(route, lambda r, k: r.adapter.chat(chat, k))

    def _mark_health(self, name: str, ok: bool) -> None:
        self._by_name[name].stats.healthy = ok

    def health(self) -> dict[str, object]:
        """The health probes' last results by deployment (details for ``/health/ready``: an
        upstream's outage does not make this replica unready)."""
        if self.probes is None:
            return {"ok": True, "probes": "off"}
        return {"ok": True, "deployments": dict(self.probes.results)}

    async def _run(
        self,
        model: str,
        call: Callable[[Route, Secret | None], Awaitable[T]],
        gate: Gate | None,
        plan: Plan | None,
        stream: bool,
        operation: str = "chat",
    ) -> tuple[T, Deployment]:
        if model not in self.groups:
            raise ModelNotFound(f"model {model!r} does not exist", param="model")
        routes = plan if plan is not None else self._ordered(model, stream)
        loop = asyncio.get_running_loop()
        request = _Request(loop.time() + routes[0].deployment.timeouts.total, stream, operation)
        try:
            try:
                return await self._group(routes, call, gate, request)
            except GatewayError as exc:
                kind = "general" if id(exc) in request.refusals else error_class(exc)
                own = plan.fallbacks if isinstance(plan, Plan) else None
                if kind is None:
                    fallbacks = []
                elif own is not None and kind in own:
                    fallbacks = own[kind]
                else:
                    fallbacks = self._settings.fallbacks_for(model, kind)
                    allows = plan.allows if isinstance(plan, Plan) else None
                    if allows is not None:
                        fallbacks = [name for name in fallbacks if allows(name)]
                if not fallbacks:
                    raise
                last = exc
            for name in fallbacks:
                try:
                    return await self._group(self._ordered(name, stream), call, gate, request)
                except GatewayError as exc:
                    if id(exc) not in request.refusals and error_class(exc) is None:
                        raise
                    last = exc
            raise last
        except _Expired as expired:
            raise expired.error from None  # the request's time is up: no attempt after this

    async def _group(
        self,
        routes: list[Route],
        call: Callable[[Route, Secret | None], Awaitable[T]],
        gate: Gate | None,
        request: _Request,
    ) -> tuple[T, Deployment]:
        loop = asyncio.get_running_loop()
        queue = list(routes)
        last: GatewayError | None = None
        again_after: float | None = None  # the last failure's Retry-After, within the cap
        tries = 0
        while queue and tries <= self._settings.retries:
            route = queue.pop(0)
            if route.credential is not None and route.credential in request.unobtainable:
                continue  # asking again would fail, or wait, the same way
            if gate is not None:
                skipped = await gate(route.deployment)
                if skipped is not None:
                    request.refusals.add(id(skipped))
                    last = skipped
                    continue
            if tries:
                wait = max(backoff(tries, self._settings.backoff, self._rng), again_after or 0.0)
                if loop.time() + wait >= request.deadline:
                    break  # the retry could not finish in time: the last failure stands
                if wait > 0:
                    await asyncio.sleep(wait)
            if not await self.breakers.attempt(route.deployment.name) and queue:
                continue  # another request is probing its half-open breaker
            tries += 1
            try:
                return await self._attempt(route, call, request), route.deployment
            except GatewayError as exc:
                if not exc.retryable:
                    raise
                last = exc
                if isinstance(exc, SecretUnavailable) and route.credential is not None:
                    request.unobtainable.add(route.credential)
                waited = retry_after(exc)
                again_after = None
                if waited is not None and waited <= self._settings.backoff.retry_after_max_seconds:
                    again_after = waited
                    queue.insert(0, route)  # it said when it will have room: ask it then
        assert last is not None
        raise last

    async def _attempt(
        self,
        route: Route,
        call: Callable[[Route, Secret | None], Awaitable[T]],
        request: _Request,
    ) -> T:
        """One call of one deployment, within the request's deadline, measured and counted
        (its breaker, its latency, what it is busy with)."""
        name = route.deployment.name
        stats = route.stats
        started = time.perf_counter()  # latency is real time, whatever clock the breaker keeps
        stats.in_flight += 1
        limit = asyncio.timeout_at(request.deadline)
        deployment = route.deployment
        attempt = tracing.attempt_span(
            request.operation, deployment.provider, _upstream_model(deployment), name
        )
        try:
            with attempt as span:
                try:
                    async with limit:
                        result = await self._call(route, call)
                except GatewayError as failure:
                    tracing.failed(span, failure.code)
                    raise
                except TimeoutError:
                    tracing.failed(span, "upstream_timeout")
                    raise
        except TimeoutError:
            if not limit.expired():
                raise
            exc = UpstreamTimeout(f"deployment {name} did not answer in time")
            elapsed = time.perf_counter() - started
            stats.observe(elapsed, elapsed)
            self._failed(route, exc, started)
            raise _Expired(exc) from None
        except GatewayError as exc:
            self._failed(route, exc, started)
            if exc.retryable:
                elapsed = time.perf_counter() - started
                stats.observe(elapsed, elapsed)
            raise
        finally:
            stats.in_flight -= 1
            self.breakers.release(name)  # a probe cancelled, or refused as a bad request
        self.breakers.succeeded(name)
        _attempted(route, "ok", started)
        elapsed = time.perf_counter() - started
        stats.count(int(self._clock() // 60), requests=1)
        if request.stream:
            stats.observe(ttfb=elapsed)
            stats.in_flight += 1  # until the stream ends
            return cast(T, TimedStream(cast(Stream, result), stats, started, self._clock))
        stats.observe(elapsed, elapsed)
        usage = getattr(result, "usage", None)
        if usage is not None:
            stats.count(stats.minute, tokens=usage.total_tokens)
        return result

    def _failed(self, route: Route, exc: GatewayError, began: float) -> None:
        UPSTREAM_FAILURES[(("deployment", route.deployment.name), ("code", exc.code))] += 1
        _attempted(route, exc.code, began)
        if not exc.retryable:
            return
        self.breakers.failed(route.deployment.name, retry_after(exc))
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
