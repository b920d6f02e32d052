"""The router in process, with scripted adapters: the order deployments are tried in, retries,
cooldowns, fallbacks, the deployment gate, and the refetch of a credential the provider refused.
No gateway process and no upstream: each adapter answers from a script of outcomes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import Deployment
from gateway.config import Router as RouterSettings
from gateway.errors import (
    GatewayError,
    ModelNotFound,
    RateLimited,
    UpstreamCredentialRejected,
    UpstreamError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from gateway.providers.registry import PROVIDERS
from gateway.refs import parse_ref
from gateway.routing.router import Route, Router
from gateway.secrets.broker import SecretBroker
from tests.support.adapters import ScriptedAdapter

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def deployment(model: str, name: str, credential: str | None = None) -> Deployment:
    fields = {"model": model, "provider": "mock", "id": name}
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
) -> Router:
    routes = []
    for model, adapter in adapters:
        d = deployment(model, adapter.name, credential)
        routes.append(Route(d, adapter, d.credential_ref))
    settings = RouterSettings(retries=retries, cooldown_seconds=cooldown, fallbacks=fallbacks or {})
    return Router(settings, routes, SecretBroker({}, ttl=300, stale=0), clock or Clock())


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


async def test_retries_within_a_lone_deployment_are_bounded_by_the_retry_setting() -> None:
    a = ScriptedAdapter("a", UpstreamError("1"), UpstreamError("2"), UpstreamError("3"))
    r = router(("m", a), retries=1)
    with pytest.raises(UpstreamError, match="2"):
        await r.chat("m", BODY)
    assert len(a.keys) == 2  # the first attempt and one retry


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
