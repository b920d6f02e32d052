"""Health probes against real upstreams on loopback: a dead deployment is marked unhealthy and
skipped while a healthy one serves, and taken back once its probe succeeds again. The probe
rounds are run by the test (``Probes.round``), so nothing waits on an interval."""

from __future__ import annotations

import pytest

from gateway.metrics import METRICS
from tests.routing.conftest import BODY, Routing, config, deployment, served
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import free_port

pytestmark = pytest.mark.anyio


async def test_a_dead_deployment_is_skipped_until_its_probe_succeeds_again(
    upstreams: dict[str, FakeUpstream], routing: Routing
) -> None:
    a, b = upstreams["a"], upstreams["b"]
    dead = {"base_url": f"http://127.0.0.1:{free_port()}/v1"}  # nothing listens there
    cfg = config(
        [deployment("m", a, "gone", **dead), deployment("m", a, "a"), deployment("m", b, "b")],
        {"health_checks": {"interval_seconds": 60, "timeout_seconds": 2}, "retries": 0},
    )
    r = routing.router(cfg)
    assert r.probes is not None
    a.default.status = 500  # a answers, but fails: unhealthy too
    await r.probes.round()
    assert {n: v["ok"] for n, v in r.probes.results.items()} == {
        "gone": False,
        "a": False,
        "b": True,
    }
    assert r.probes.results["gone"]["error"] == "upstream_unavailable"
    probes = served(upstreams)
    names = {(await r.chat("m", BODY))[1].name for _ in range(6)}
    assert names == {"b"}  # with retries 0, any try of gone or a would have failed the call
    assert served(upstreams)["a"] == probes["a"]
    assert 'sealgate_deployment_healthy{deployment="gone"} 0' in METRICS.render()

    a.default.status = 200  # a recovers: its next probe takes it back
    await r.probes.round()
    assert r.probes.results["a"]["ok"] and not r.probes.results["gone"]["ok"]
    names = {(await r.chat("m", BODY))[1].name for _ in range(6)}
    assert names == {"a", "b"}
    assert r.health()["deployments"]["gone"]["ok"] is False  # type: ignore[index]


async def test_a_probe_is_a_one_token_chat_for_the_deployments_model(
    upstreams: dict[str, FakeUpstream], routing: Routing
) -> None:
    a = upstreams["a"]
    cfg = config([deployment("m", a, "a", upstream_model="up-m")], {"health_checks": {}})
    r = routing.router(cfg)
    assert r.probes is not None
    await r.probes.round()
    (seen,) = a.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.body["max_tokens"] == 1 and seen.body["model"] == "up-m"


async def test_an_embeddings_deployment_is_probed_with_an_embedding_and_shows_healthy(
    upstreams: dict[str, FakeUpstream], routing: Routing
) -> None:
    a, b = upstreams["a"], upstreams["b"]
    cfg = config(
        [deployment("m", a, "a"), deployment("e", b, "b", mode="embeddings")],
        {"health_checks": {}},
    )
    r = routing.router(cfg)
    assert r.probes is not None
    await r.probes.round()
    assert {n: v["ok"] for n, v in r.probes.results.items()} == {"a": True, "b": True}
    (seen,) = b.requests
    assert seen.path == "/v1/embeddings" and seen.body == {"model": "e", "input": "ping"}
    assert a.requests[0].path == "/v1/chat/completions"
