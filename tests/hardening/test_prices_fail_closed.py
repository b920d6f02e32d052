"""Issue 12: cost control fails closed. A deployment whose price the gateway does not know used to
count as free, so no budget ever stopped spending on it (every Claude model newer than the
bundled table, every local model). Now start-up is refused with an error that names each such
deployment, unless the operator sets its price or a default price (``governance.default_prices``);
an explicit price of 0 is the operator's choice and is accepted."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.hardening.conftest import CANARY_KEY, HI, spend_of
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

UNPRICED = """
deployments:
  - model: new-claude
    provider: anthropic
    upstream_model: claude-opus-9  # a model the bundled table does not price (yet)
    base_url: {upstream}
    credential: env:CANARY_PROVIDER_KEY
    allow_private_network: true
  - model: local-llama
    id: llama-east
    provider: openai_compatible
    base_url: {upstream}/v1
    allow_private_network: true
  - model: priced-gpt
    provider: openai_compatible
    upstream_model: gpt-4o
    base_url: {upstream}/v1
    allow_private_network: true
  - model: mock-gpt
    provider: mock
router:
  retries: 0
verify:
  mode: "off"
"""


def gateway_for(workdir: Path, text: str) -> GatewayProcess:
    return GatewayProcess(workdir, text, env={"CANARY_PROVIDER_KEY": CANARY_KEY})


def test_a_deployment_without_a_known_price_refuses_start_up_and_is_named(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    process = gateway_for(tmp_path, UNPRICED.format(upstream=upstream.base_url))
    process.start(wait=False)
    try:
        assert process.wait_exit() == 2  # a configuration error
    finally:
        process.stop()
    stderr = process.stderr()
    assert "new-claude/anthropic" in stderr
    assert "llama-east" in stderr
    assert "priced-gpt" not in stderr and "mock-gpt" not in stderr
    assert "governance.default_prices" in stderr
    assert "Sealgate serving" not in stderr


def test_an_explicit_price_of_zero_is_accepted(upstream: FakeUpstream, tmp_path: Path) -> None:
    text = UNPRICED.format(upstream=upstream.base_url) + (
        "governance:\n  deployments:\n"
        '    new-claude/anthropic: {prices: {input: "0"}}\n'
        '    llama-east: {prices: {input: "0", output: "0"}}\n'
    )
    process = gateway_for(tmp_path, text).start()
    process.stop()


def chat(process: GatewayProcess, key: str, model: str) -> httpx.Response:
    return httpx.post(
        process.url + "/v1/chat/completions",
        json={"model": model, "messages": [HI], "max_tokens": 10},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


@pytest.mark.parametrize("model", ["new-claude", "local-llama"])
def test_the_default_price_is_charged_and_a_hard_budget_stops_spending(
    upstream: FakeUpstream, tmp_path: Path, model: str
) -> None:
    # $1000 and $2000 per million tokens: the fake's 11 + 7 tokens cost $0.025 a call.
    text = UNPRICED.format(upstream=upstream.base_url) + (
        'governance:\n  default_prices: {input: "1000", output: "2000"}\n'
    )
    process = gateway_for(tmp_path, text).start()
    try:
        made = process.create_key([model])
        budget = {"scope": "key", "scope_id": made["id"], "period": "daily", "max_usd": "0.1"}
        assert process.admin("POST", "/admin/budgets", json=budget).status_code == 201
        statuses = [chat(process, made["key"], model).status_code for _ in range(8)]
        assert statuses[0] == 200
        assert 429 in statuses  # the budget ran out: spending stopped
        served = statuses.count(200)
        row = spend_of(process, made["id"], served)
        assert row["cost_nanos"] >= 25_000_000 * served
    finally:
        process.stop()
