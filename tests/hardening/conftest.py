"""A real gateway for the hardening tests (issue 12), with a provider key planted as a canary.

Its deployments cover the three ways an answer comes back: an OpenAI-wire upstream passed
through (``fake-gpt``), an Anthropic upstream translated (``fake-claude``), and the built-in mock
(``mock-gpt``). The provider key has no known key shape, so only the gateway's knowledge of the
live value can keep it out of what it writes.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.governance.conftest import postgres_database  # noqa: F401 - a fixture used here too
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

CANARY_KEY = "canaryproviderkey" + secrets.token_hex(16)
HI = {"role": "user", "content": "hi"}

DEPLOYMENTS = """
deployments:
  - model: fake-gpt
    provider: openai_compatible
    upstream_model: upstream-gpt
    base_url: {upstream}/v1
    credential: env:CANARY_PROVIDER_KEY
    allow_private_network: true
    timeouts: {{connect: 2, read: 10, total: 30}}
  - model: fake-claude
    provider: anthropic
    upstream_model: claude-sonnet-4-20250514
    base_url: {upstream}
    credential: env:CANARY_PROVIDER_KEY
    allow_private_network: true
    timeouts: {{connect: 2, read: 10, total: 30}}
  - model: mock-gpt
    provider: mock
router:
  retries: 0
verify:
  mode: "off"
governance:
  deployments:
    fake-gpt/openai_compatible: {{prices: {{input: "1", output: "2"}}}}
"""
MODELS = ["fake-gpt", "fake-claude", "mock-gpt"]


def config(upstream: FakeUpstream, extra: str = "") -> str:
    return DEPLOYMENTS.format(upstream=upstream.base_url) + extra


def start(workdir: Path, text: str) -> GatewayProcess:
    return GatewayProcess(workdir, text, env={"CANARY_PROVIDER_KEY": CANARY_KEY}).start()


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    process = start(tmp_path_factory.mktemp("hardening"), config(upstream_server))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def key(gateway: GatewayProcess) -> str:
    made: str = gateway.create_key(MODELS)["key"]
    return made


def new_key(gateway: GatewayProcess, **fields: Any) -> tuple[str, str]:
    """A fresh virtual key for every model: (key, id)."""
    made = gateway.create_key(MODELS, **fields)
    return made["key"], made["id"]


def post(
    gateway: GatewayProcess, path: str, body: Any, key: str | None, **headers: str
) -> httpx.Response:
    """POST ``body`` (JSON, or bytes as they are) with ``key`` as the Bearer credential."""
    sent = dict(headers)
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    if isinstance(body, bytes):
        sent.setdefault("Content-Type", "application/json")
        return httpx.post(gateway.url + path, content=body, headers=sent, timeout=60)
    return httpx.post(gateway.url + path, json=body, headers=sent, timeout=60)


def chat(gateway: GatewayProcess, key: str, model: str = "fake-gpt", **body: Any) -> httpx.Response:
    return post(gateway, "/v1/chat/completions", {"model": model, "messages": [HI], **body}, key)


def sse_events(text: str) -> list[tuple[str, str]]:
    """(event, data) pairs of an SSE body."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event, data = "", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if event or data:
            out.append((event, "\n".join(data)))
    return out


def spend_of(
    gateway: GatewayProcess, key_id: str, expected: int, timeout: float = 20
) -> dict[str, Any]:
    """The spend report's row for one key once it counts ``expected`` requests (the outbox
    delivers asynchronously); an empty row if it never shows up."""
    deadline = time.monotonic() + timeout
    while True:
        response = gateway.admin("GET", "/admin/reports/spend", params={"group_by": "key"})
        assert response.status_code == 200, response.text
        rows = [r for r in response.json()["data"] if r["key"] == key_id]
        row: dict[str, Any] = rows[0] if rows else {"requests": 0}
        if row["requests"] >= expected or time.monotonic() > deadline:
            return row
        time.sleep(0.1)


def files_under(root: Path) -> dict[Path, bytes]:
    """Every file under ``root`` as it is now (the SQLite database and its WAL among them)."""
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def raw_connection(gateway: GatewayProcess, timeout: float = 10) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=timeout)
    return sock


def read_until_closed(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    """What the server sends until it closes the connection (or ``limit`` bytes, or the
    socket's timeout)."""
    got = b""
    try:
        while len(got) < limit:
            piece = sock.recv(65536)
            if not piece:
                break
            got += piece
    except (TimeoutError, ConnectionResetError):
        pass
    return got
