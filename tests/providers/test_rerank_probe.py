"""A rerank-only deployment (``mode: rerank``) is probed with the rerank of one document, so it
shows healthy: a chat probe would fail on a server that serves only rerank. Against the fake
Cohere server on loopback (tests/support/fake_native.py), which checks the key."""

from __future__ import annotations

import json

import pytest

from gateway.config import parse_config
from gateway.providers.pool import UpstreamPool
from gateway.providers.registry import PROVIDERS
from gateway.routing.router import Router, routes_for
from gateway.secrets.broker import SecretBroker
from tests.providers.conftest import COHERE_KEY
from tests.support.fake_native import FakeCohere

pytestmark = pytest.mark.anyio


async def test_a_rerank_deployment_is_probed_with_a_rerank_and_shows_healthy(
    cohere: FakeCohere, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_COHERE_KEY", COHERE_KEY)
    deployment = {
        "model": "rerank",
        "provider": "cohere",
        "upstream_model": "rerank-v3.5",
        "base_url": cohere.base_url,
        "credential": "env:FAKE_COHERE_KEY",
        "allow_private_network": True,
        "mode": "rerank",
    }
    text = json.dumps({"deployments": [deployment], "router": {"health_checks": {}}})
    cfg = parse_config(text, "<test>", PROVIDERS)
    pool = UpstreamPool()
    router = Router(
        cfg.router, routes_for(cfg.deployments, pool), SecretBroker({}, ttl=300, stale=0)
    )
    assert router.probes is not None
    cohere.reset()
    await router.probes.round()
    await pool.close()
    assert router.probes.results["rerank/cohere"]["ok"] is True, router.probes.results
    (seen,) = cohere.requests
    assert seen.path == "/v2/rerank"
    assert seen.body["documents"] == ["ping"] and seen.body["model"] == "rerank-v3.5"
