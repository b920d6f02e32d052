"""The router in process, with scripted adapters: the order deployments are tried in, retries,
cooldowns, fallbacks, the deployment gate, the refetch of a credential the provider refused, and
what one request may wait for (each deployment and each credential once, one deadline). No
gateway process and no upstream: each adapter answers from a script of outcomes.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gateway.config import Deployment
from gateway.config import Router as RouterSettings
from gateway.errors import (
    GatewayError,
    ModelNotFound,
    RateLimited,
    SecretUnavailable,
    UpstreamCredentialRejected,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.providers.registry import PROVIDERS
from gateway.refs import CredentialRef, parse_ref
from gateway.routing.router import Route, Router
from gateway.secrets.broker import Resolver, SecretBroker
from gateway.secrets.errors import BackendUnavailable
from gateway.secrets.secret import Secret
from tests.support.adapters import ScriptedAdapter, Stall

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def deployment(
    model: str, name: str, credential: str | None = None, total: float = 600
) -> Deployment:
    fields: dict[str, object] = {
        "model": model,
        "provider": "mock",
        "id": name,
        "timeouts": {"total": total},
    }
    if credential is not None:
        fields.update(
            provider="openai", base_url="https://api.openai.com/v1", credential=credential
        )
    return Deployment.model_validate(fields, context={"providers": PROVIDERS})


def router(
    *adapters: tuple[str, ScriptedAdapter],
    retries: int = 1,
    cooldown: float = 30,
    fallbacks: dict[str, list[str]] | None = None,
    clock: Clock | None = None,
    credential: str | None = None,
    total: float = 600,
    resolvers: dict[str, Resolver] | None = None,
) -> Router:
    routes = []
    for model, adapter in adapters:
        d = deployment(model, adapter.name, credential, total)
        routes.append(Route(d, adapter, d.credential_ref))
    settings = RouterSettings(retries=retries, cooldown_seconds=cooldown, fallbacks=fallbacks or {})
    broker = SecretBroker(resolvers or {}, ttl=300, stale=0)
    return Router(settings, routes, broker, clock or Clock())


class UnreachableVault:
    """A secret backend that is down: every fetch fails after ``delay`` seconds (a Vault call
    that times out), and is counted."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.fetches = 0

    async def fetch(self, ref: CredentialRef) -> Secret:
        self.fetches += 1
        await asyncio.sleep(self.delay)
        raise BackendUnavailable(f"{ref}: Vault did not answer in time")

    async def health(self) -> dict[str, object]:
        return {"ok": False, "reachable": False}

    async def close(self) -> None:
        return None


BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


async def served_by(r: Router, model: str = "m") -> str:
    reply, deployment = await r.chat(model, BODY)
    assert reply.body.decode() == f"{deployment.name} ok"
    return deployment.name


async def test_calls_take_turns_over_the_deployments_of_a_group() -> None:
    r = router(("m", ScriptedAdapter("a")), ("m", ScriptedAdapter("b")))
    assert [await served_by(r) for _ in range(4)] == ["a", "b", "a", "b"]


async def test_a_retryable_failure_moves_to_the_next_deployment_and_cools_the_first_down() -> None:
    a = ScriptedAdapter("a", UpstreamUnavailable("down"))
    b = ScriptedAdapter("b")
    clock = Clock()
    r = router(("m", a), ("m", b), clock=clock)
    assert await served_by(r) == "b"
    # a is in cooldown: it goes last, so b serves the next calls wherever the turn starts
    assert [await served_by(r) for _ in range(3)] == ["b", "b", "b"]
    clock.now += 31  # the cooldown is over: a is back in the rotation
    assert {await served_by(r) for _ in range(2)} == {"a", "b"}


async def test_a_failure_that_is_not_retryable_is_final() -> None:
    a = ScriptedAdapter("a", UpstreamRejected("bad request", upstream_status=400))
    b = ScriptedAdapter("b")
    r = router(("m", a), ("m", b))
    with pytest.raises(UpstreamRejected):
        await r.chat("m", BODY)
    assert b.keys == []  # b was never tried


async def test_a_lone_deployment_that_failed_is_not_tried_again_in_the_same_request() -> None:
    # Issue 13.7: a lone deployment that had just failed (and so was in cooldown) was tried
    # again at once, doubling what a request waited on a failing upstream.
    a = ScriptedAdapter("a", UpstreamError("1"), UpstreamError("2"))
    r = router(("m", a), retries=1)
    with pytest.raises(UpstreamError, match="1"):
        await r.chat("m", BODY)
    assert len(a.keys) == 1
    with pytest.raises(UpstreamError, match="2"):  # the next request still tries it: it is all
        await r.chat("m", BODY)  # there is, cooldown or not


async def test_retries_bound_the_attempts_in_a_group_each_on_another_deployment() -> None:
    a, b, c = (ScriptedAdapter(n, UpstreamError(n)) for n in "abc")
    r = router(("m", a), ("m", b), ("m", c), retries=1)
    with pytest.raises(UpstreamError):
        await r.chat("m", BODY, plan=r.plan("m"))
    assert [len(x.keys) for x in (a, b, c)] == [1, 1, 0]  # the first attempt and one retry


async def test_a_credential_that_cannot_be_obtained_is_asked_for_once_per_request() -> None:
    # Issue 13.7: every deployment sharing the reference asked for it again, so a slow Vault
    # cost one timeout per deployment before the 503.
    vault = UnreachableVault(delay=0.05)
    adapters = [ScriptedAdapter(n) for n in "abcd"]
    r = router(
        *(("m", x) for x in adapters),
        retries=3,
        credential="vault:kv/llm/openai#api_key",
        resolvers={"vault": vault},
    )
    with pytest.raises(SecretUnavailable):
        await r.chat("m", BODY)
    assert vault.fetches == 1
    assert all(x.keys == [] for x in adapters)


async def test_every_attempt_shares_one_deadline_the_first_deployments_total_timeout() -> None:
    # Issue 13.7: with read 1 s and total 2 s, a request answered 504 after 3.01 s: each
    # attempt had its own timeouts. Now the second attempt gets what is left of the first's
    # total, and no third is made.
    a = ScriptedAdapter("a", Stall(0.2, UpstreamTimeout("a read timeout")))
    b = ScriptedAdapter("b", Stall(5.0))
    c = ScriptedAdapter("c")
    r = router(("m", a), ("m", b), ("m", c), retries=2, total=0.3)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match="deployment b did not answer in time"):
        await r.chat("m", BODY, plan=r.plan("m"))
    assert 0.28 < time.monotonic() - started < 0.6  # not 0.2 + 5
    assert c.keys == []


async def test_the_fallback_group_serves_when_the_whole_group_fails() -> None:
    a = ScriptedAdapter("a", UpstreamUnavailable("down"), UpstreamUnavailable("down"))
    backup = ScriptedAdapter("backup")
    r = router(("m", a), ("spare", backup), fallbacks={"m": ["spare"]})
    assert await served_by(r) == "backup"


async def test_the_last_failure_is_raised_when_every_group_fails() -> None:
    a = ScriptedAdapter("a", *[UpstreamUnavailable("a down")] * 2)
    backup = ScriptedAdapter("backup", *[UpstreamUnavailable("backup down")] * 2)
    r = router(("m", a), ("spare", backup), fallbacks={"m": ["spare"]})
    with pytest.raises(UpstreamUnavailable, match="backup down"):
        await r.chat("m", BODY)


async def test_a_model_with_no_group_is_not_found() -> None:
    r = router(("m", ScriptedAdapter("a")))
    with pytest.raises(ModelNotFound):
        await r.chat("other", BODY)


async def test_a_gate_that_refuses_skips_the_deployment_without_cooling_it_down() -> None:
    a, b = ScriptedAdapter("a"), ScriptedAdapter("b")
    r = router(("m", a), ("m", b))

    async def gate(d: Deployment) -> GatewayError | None:
        return RateLimited("a is full") if d.name == "a" else None

    plan = r.plan("m")
    assert [route.deployment.name for route in plan] == ["a", "b"]
    reply, served = await r.chat("m", BODY, gate, plan)
    assert reply.body == b"b ok"
    assert served.name == "b" and a.keys == []
    assert [route.deployment.name for route in r.plan("m")] == ["b", "a"]  # a not cooled down


async def test_a_gate_that_refuses_everything_raises_its_refusal() -> None:
    r = router(("m", ScriptedAdapter("a")))

    async def full(d: Deployment) -> GatewayError | None:
        return RateLimited("full")

    with pytest.raises(RateLimited, match="full"):
        await r.chat("m", BODY, full)


async def test_a_refused_credential_is_fetched_again_once_and_the_call_retried(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "key"
    secret.write_text("sk-first-key-0123456789")
    a = ScriptedAdapter("a", UpstreamCredentialRejected("refused"))
    r = router(("m", a), credential=f"file:{secret}")
    assert await r.chat("m", BODY)
    assert a.keys == ["sk-first-key-0123456789"] * 2  # refetched from the file: unchanged here

    secret.write_text("sk-rotated-key-0123456789")
    a.script.append(UpstreamCredentialRejected("refused again"))
    assert await r.chat("m", BODY)
    assert a.keys[-2:] == ["sk-first-key-0123456789", "sk-rotated-key-0123456789"]


def test_the_router_lists_credentials_of_its_routes() -> None:
    r = router(("m", ScriptedAdapter("a")), credential="env:SOME_KEY")
    assert r.credentials() == [parse_ref("env:SOME_KEY")]
