from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess, free_port

PROVIDER_KEY = "sk-fakeprovider-" + secrets.token_urlsafe(24)

CONFIG = """
deployments:
  - model: fake-gpt
    provider: openai_compatible
    upstream_model: upstream-gpt
    base_url: {upstream}/v1
    credential: env:FAKE_PROVIDER_KEY
    allow_private_network: true
    timeouts: {{connect: 1, read: 2, total: 5}}
  - model: azure-gpt
    provider: azure
    upstream_model: my-azure-deployment
    api_version: "2024-10-21"
    base_url: {upstream}
    credential: env:FAKE_PROVIDER_KEY
    allow_private_network: true
  - model: dead-gpt
    provider: openai_compatible
    base_url: http://127.0.0.1:{dead_port}/v1
    allow_private_network: true
    timeouts: {{connect: 1, read: 2, total: 5}}
  - model: mock-gpt
    provider: mock
router:
  retries: 0
server:
  max_body_bytes: 65536
verify:
  mode: "off"
governance:
  default_prices: {{input: "0"}}  # the fake upstreams cost nothing (a price must be said)
"""


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir: Path = tmp_path_factory.mktemp("gateway")
    config = CONFIG.format(upstream=upstream_server.base_url, dead_port=free_port())
    process = GatewayProcess(workdir, config, env={"FAKE_PROVIDER_KEY": PROVIDER_KEY}).start()
    yield process
    process.stop()


PLAIN = """router:
  retries: 0
verify:
  mode: "off"
governance:
  default_prices: {input: "0"}
"""


def claude_gateway(
    workdir: Path, upstream: FakeUpstream, key: str, sections: str = PLAIN
) -> Iterator[GatewayProcess]:
    """A gateway process whose model ``claude`` is an Anthropic deployment on the fake
    upstream, with its key in ``FAKE_ANTHROPIC_KEY``, and the config's other ``sections``; for
    a module's ``gateway`` fixture to ``yield from``."""
    config = f"""
deployments:
  - model: claude
    provider: anthropic
    upstream_model: claude-sonnet-4-5
    base_url: {upstream.base_url}
    credential: env:FAKE_ANTHROPIC_KEY
    allow_private_network: true
{sections}"""
    process = GatewayProcess(workdir, config, env={"FAKE_ANTHROPIC_KEY": key}).start()
    yield process
    process.stop()
