"""Health probes in a running gateway: their results in /health/ready and /metrics, and a dead
deployment skipped, through the real process, a real upstream and a port nothing listens on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess, free_port

CONFIG = """
deployments:
  - {{model: m, provider: openai_compatible, id: gone, base_url: "http://127.0.0.1:{dead}/v1",
     allow_private_network: true}}
  - {{model: m, provider: openai_compatible, id: live, base_url: "{upstream}/v1",
     allow_private_network: true}}
router:
  retries: 0
  health_checks: {{interval_seconds: 1, timeout_seconds: 2}}
verify:
  mode: "off"
governance:
  default_prices: {{input: "0"}}
"""
WAIT_SECONDS = 30.0  # for the first probe round: a bound on the wait, not an assertion


@pytest.fixture
def gateway(upstream: FakeUpstream, tmp_path: Path) -> Iterator[GatewayProcess]:
    text = CONFIG.format(dead=free_port(), upstream=upstream.base_url)
    process = GatewayProcess(tmp_path, text).start()
    yield process
    process.stop()


def probed(gateway: GatewayProcess) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        ready = httpx.get(gateway.url + "/health/ready", timeout=5).json()
        found: dict[str, Any] = ready["checks"]["deployments"].get("deployments", {})
        if len(found) == 2 or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_dead_deployment_shows_unhealthy_in_readiness_and_metrics_and_gets_no_traffic(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    results = probed(gateway)
    assert results["gone"]["ok"] is False and results["gone"]["error"] == "upstream_unavailable"
    assert results["live"]["ok"] is True
    key = gateway.create_key(["m"])["key"]
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    statuses = [
        httpx.post(
            gateway.url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        ).status_code
        for _ in range(6)
    ]
    assert statuses == [200] * 6  # with retries 0, a turn on the dead one would have failed
    metrics = gateway.admin("GET", "/metrics").text
    assert 'sealgate_deployment_healthy{deployment="gone"} 0' in metrics
    assert 'sealgate_deployment_healthy{deployment="live"} 1' in metrics
