"""A real gateway process (fake upstream on loopback) whose traffic the observability tests
script, and helpers to read what it wrote: access log lines and the Prometheus text."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess, free_port

PROVIDER_KEY = "sk-canary-observed-" + secrets.token_hex(20)
DEPLOYMENT = "priced-gpt"
CHEAP = "cheap-embed"

CONFIG = """
deployments:
  - model: gpt
    id: {deployment}
    provider: openai_compatible
    upstream_model: upstream-gpt
    base_url: {upstream}/v1
    credential: env:OBSERVED_PROVIDER_KEY
    allow_private_network: true
    timeouts: {{connect: 1, read: 5, total: 10}}
  - model: embed
    id: {cheap}
    provider: openai_compatible
    base_url: {upstream}/v1
    credential: env:OBSERVED_PROVIDER_KEY
    allow_private_network: true
  - model: dead
    id: dead-gpt
    provider: openai_compatible
    base_url: http://127.0.0.1:{dead_port}/v1
    allow_private_network: true
    timeouts: {{connect: 1, read: 2, total: 5}}
router:
  retries: 0
verify:
  mode: "off"
governance:
  default_prices: {{input: "0"}}
  deployments:
    {deployment}: {{prices: {{input: "1000", output: "2000"}}}}
    {cheap}: {{prices: {{input: "1000"}}}}
"""


def config(upstream: FakeUpstream, extra: str = "") -> str:
    return (
        CONFIG.format(
            deployment=DEPLOYMENT, cheap=CHEAP, upstream=upstream.base_url, dead_port=free_port()
        )
        + extra
    )


@pytest.fixture
def observed(upstream: FakeUpstream, tmp_path: Path) -> Iterator[GatewayProcess]:
    """A fresh gateway process per test, so its counters hold this test's traffic only."""
    process = GatewayProcess(
        tmp_path / "gw", config(upstream), env={"OBSERVED_PROVIDER_KEY": PROVIDER_KEY}
    ).start()
    yield process
    process.stop()


def access_lines(gateway: GatewayProcess) -> list[dict[str, Any]]:
    lines = []
    for line in gateway.stderr().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "sealgate.access":
                lines.append(entry)
    return lines


SAMPLE = re.compile(r"^([a-z_:]+)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The Prometheus text as {(name, labels): value}; HELP and TYPE lines checked for form."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_:]+ .+$", line), line
            continue
        match = SAMPLE.match(line)
        assert match, line
        name, labels, value = match.groups()
        out[(name, frozenset(LABEL.findall(labels or "")))] = float(value)
    return out


def metric(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def chat(
    gateway: GatewayProcess, key: str, headers: dict[str, str] | None = None, **extra: Any
) -> httpx.Response:
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], **extra}
    sent = {"Authorization": f"Bearer {key}", **(headers or {})}
    return httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=sent, timeout=30)
