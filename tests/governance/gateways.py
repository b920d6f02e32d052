"""Start real gateway processes for governance tests, and drive them concurrently."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

MODEL = "fake-gpt"
DEPLOYMENT = "fake-gpt/openai_compatible"
# The fake upstream reports 11 prompt + 7 completion tokens for every chat call.
USAGE_TOKENS = 18
# Prices chosen so every call costs a round amount: 11 * 0.001 + 7 * 0.002 = $0.025.
COST_NANOS = 11 * 1_000_000 + 7 * 2_000_000
# 24 letters: a prompt estimate of 4 + 6 + 3 = 13 tokens (framing, text, the reply's priming);
# max_tokens 10: reserves 23 tokens, $0.033, more than the call uses, so nothing here depends on
# reservation slack.
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 24}], "max_tokens": 10}
RESERVED_TOKENS = 23
RESERVED_NANOS = 13 * 1_000_000 + 10 * 2_000_000


def config(
    upstream: FakeUpstream,
    storage_url: str | None = None,
    redis: dict[str, str] | None = None,
    auth_cache_seconds: float = 30,
    extra: str = "",
    refresh_seconds: float = 0.5,
    outbox: dict[str, float] | None = None,
    storage_timeout: float | None = None,
) -> str:
    text = f"""
deployments:
  - model: {MODEL}
    provider: openai_compatible
    base_url: {upstream.base_url}/v1
    allow_private_network: true
    timeouts: {{connect: 2, read: 10, total: 20}}
router:
  retries: 0
server:
  auth_cache_seconds: {auth_cache_seconds}
verify:
  mode: "off"
governance:
  refresh_seconds: {refresh_seconds}
  deployments:
    {DEPLOYMENT}: {{prices: {{input: "1000", output: "2000"}}}}
"""
    if redis is not None:
        text += "  counters: redis\n  redis:\n"
        text += "".join(f"    {k}: {v}\n" for k, v in redis.items())
    if outbox is not None:
        text += "  outbox:\n" + "".join(f"    {k}: {v}\n" for k, v in outbox.items())
    if storage_url is not None or storage_timeout is not None:
        text += "storage:\n"
        text += f"  url: {storage_url}\n" if storage_url is not None else ""
        text += f"  timeout_seconds: {storage_timeout}\n" if storage_timeout is not None else ""
    return text + extra


class As:
    """Admin API calls made with one credential (an admin key or an admin token)."""

    def __init__(self, gateway: GatewayProcess, credential: str) -> None:
        self.gateway = gateway
        self.credential = credential

    def __call__(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.credential}"}
        return httpx.request(method, self.gateway.url + path, headers=headers, timeout=10, **kwargs)


def start(workdir: Path, text: str) -> GatewayProcess:
    return GatewayProcess(workdir, text).start()


@contextmanager
def pair(workdir: Path, text: str) -> Iterator[list[GatewayProcess]]:
    """Two replicas on ``text`` (in ``workdir``/a and /b) for the length of the block; the first
    starts alone, so it runs the migrations."""
    with running(workdir / "a", text) as first, running(workdir / "b", text) as second:
        yield [first, second]


@contextmanager
def running(workdir: Path, text: str) -> Iterator[GatewayProcess]:
    """A gateway process on ``text`` for the length of the block."""
    process = start(workdir, text)
    try:
        yield process
    finally:
        process.stop()


def chat(gateway: GatewayProcess, key: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json={**BODY, **extra},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def hammer(gateways: list[GatewayProcess], key: str, count: int, workers: int = 24) -> list[int]:
    """``count`` chat calls spread over the gateways from ``workers`` threads at once; the
    statuses in the order sent."""
    clients = [httpx.Client(base_url=g.url, timeout=30) for g in gateways]

    def one(i: int) -> int:
        response = clients[i % len(clients)].post(
            "/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {key}"}
        )
        return response.status_code

    with ThreadPoolExecutor(workers) as pool:
        statuses = list(pool.map(one, range(count)))
    for client in clients:
        client.close()
    return statuses


def hammer_through(url: str, key: str, count: int, workers: int = 24) -> list[int]:
    """``count`` chat calls to one address (a load balancer) from ``workers`` threads, each on a
    connection of its own, so a balancer that picks a replica per connection spreads them."""
    single_use = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=url, timeout=30, limits=single_use) as client:

        def one(_: int) -> int:
            response = client.post(
                "/v1/chat/completions",
                json=BODY,
                headers={"Authorization": f"Bearer {key}", "Connection": "close"},
            )
            return response.status_code

        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(one, range(count)))


def report(gateway: GatewayProcess, group_by: str = "key", **params: str) -> dict[str, Any]:
    response = gateway.admin("GET", "/admin/reports/spend", params={"group_by": group_by, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_for_requests(
    gateway: GatewayProcess, expected: int, timeout: float = 20
) -> dict[str, Any]:
    """The spend report once it counts ``expected`` requests (the outboxes deliver
    asynchronously); the last report seen if it never does."""
    deadline = time.monotonic() + timeout
    body = report(gateway)
    while body["totals"]["requests"] < expected and time.monotonic() < deadline:
        time.sleep(0.1)
        body = report(gateway)
    return body


def assert_exact_spend(gateway: GatewayProcess, answered: int, recorded: int | None = None) -> None:
    """The spend table holds exactly the requests that were answered 200, each priced and
    counted as the fake upstream reported it (and, with ``recorded``, that many records in all:
    a request that failed is recorded at no cost)."""
    expected = answered if recorded is None else recorded
    totals = wait_for_requests(gateway, expected)["totals"]
    assert totals["requests"] == expected
    assert totals["prompt_tokens"] + totals["completion_tokens"] == answered * USAGE_TOKENS
    assert totals["cost_nanos"] == answered * COST_NANOS


def restarted(gateway: GatewayProcess, workdir: Path) -> GatewayProcess:
    """The same replica started again: same config, data directory and admin key."""
    config = gateway.config_path.read_text() if gateway.config_path is not None else None
    again = GatewayProcess(workdir, config, admin_key=gateway.admin_key)
    again.data_dir = gateway.data_dir
    return again.start()


def wait_for_window(min_seconds_left: float = 25) -> None:
    """Rate limits count per calendar minute: start a burst early enough in one that it ends
    inside it."""
    left = 60 - time.time() % 60
    if left < min_seconds_left:
        time.sleep(left + 0.2)
