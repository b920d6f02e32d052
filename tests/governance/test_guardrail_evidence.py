"""What the guardrails leave in the stores, through a running gateway on SQLite and on PostgreSQL:
a request blocked before the upstream gets a spend record (nothing charged, status
``guardrail_blocked``, the detector evidence), every stage's findings get a row in the audit
chain (stage, policy, detector counts and actions, never the matched text), and a team's policy
is set through the admin API, audited, and applies to the team's keys at once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.governance import gateways
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

CARD = "4111 1111 1111 1111"
EMAIL = "jane.roe@example.com"
OPENAI_KEY = "sk-proj-Zx9Qw3Er7Ty1Ui5Op0As2Df4Gh6Jk8Lm"
GUARDRAILS = """guardrails:
  default: standard
  policies:
    standard:
      detectors: {personal: mask, secrets: block, injection: log}
    strict:
      detectors: {personal: block, secrets: block}
"""


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
    module_storage_url: str | None,
) -> Iterator[GatewayProcess]:
    text = gateways.config(upstream_server, storage_url=module_storage_url, extra=GUARDRAILS)
    workdir: Path = tmp_path_factory.mktemp("guardrail-evidence")
    with gateways.running(workdir, text) as process:
        yield process


def chat(gateway: GatewayProcess, key: str, text: str, **extra: Any) -> httpx.Response:
    return gateways.chat(gateway, key, messages=[{"role": "user", "content": text}], **extra)


def until(check: Callable[[], Any], seconds: float = 10.0) -> Any:
    """``check()`` once it is truthy (polled), or fail."""
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.05)
    return found


def findings(gateway: GatewayProcess, key_id: str) -> list[dict[str, Any]]:
    audit = gateway.admin("GET", "/admin/audit").json()
    assert audit["chain_broken_at"] is None
    return [
        e
        for e in reversed(audit["data"])
        if e["action"] == "guardrail.findings" and e["target"] == f"key:{key_id}"
    ]


def test_a_request_blocked_before_the_upstream_leaves_a_zero_cost_spend_record_with_evidence(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    made = gateway.create_key([gateways.MODEL])
    answer = chat(gateway, made["key"], f"debug: OpenAI(api_key='{OPENAI_KEY}') for {EMAIL}")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "guardrail_blocked"
    assert upstream.requests == []
    logs = gateway.admin("GET", "/admin/spend/logs", params={"key_id": made["id"]}).json()
    (row,) = logs["data"]
    assert row["status"] == "guardrail_blocked"
    assert (row["cost_nanos"], row["prompt_tokens"], row["completion_tokens"]) == (0, 0, 0)
    assert row["deployment"] is None and row["model"] == gateways.MODEL
    assert row["guardrails"] == "email=1,openai_key=1"
    blocked = gateway.admin(
        "GET", "/admin/spend/logs", params={"status": "guardrail_blocked"}
    ).json()
    assert row["id"] in {r["id"] for r in blocked["data"]}
    assert OPENAI_KEY not in json.dumps(logs) and EMAIL not in json.dumps(logs)


def test_every_stages_findings_are_in_the_audit_chain_by_count_and_action_never_by_text(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    made = gateway.create_key([gateways.MODEL])
    upstream.then(content=[f"noted, {EMAIL}"])
    assert chat(gateway, made["key"], f"cards {CARD} and 5555 5555 5555 4444").status_code == 200
    upstream.then(content=["your card is 4111 1111 ", "1111 1111 ok"])
    assert chat(gateway, made["key"], "card?", stream=True).status_code == 200
    assert chat(gateway, made["key"], f"key {OPENAI_KEY}").status_code == 400

    rows = until(lambda: (r := findings(gateway, made["id"])) and len(r) >= 4 and r)
    details = [
        (e["detail"]["stage"], e["detail"]["findings"], e["detail"]["actions"]) for e in rows
    ]
    assert details == [
        ("request", {"card": 2}, {"card": "mask"}),
        ("response", {"email": 1}, {"email": "mask"}),
        ("stream", {"card": 1}, {"card": "mask"}),
        ("request", {"openai_key": 1}, {"openai_key": "block"}),
    ]
    assert [e["detail"]["blocked"] for e in rows] == [None, None, None, "openai_key"]
    assert all(e["detail"]["policy"] == "standard" for e in rows)
    assert all(e["detail"]["model"] == gateways.MODEL and e["detail"]["request_id"] for e in rows)
    dumped = json.dumps(gateway.admin("GET", "/admin/audit").json())
    for text in (CARD, CARD.replace(" ", ""), "5555 5555 5555 4444", EMAIL, OPENAI_KEY):
        assert text not in dumped


def test_a_team_policy_set_through_the_admin_api_applies_to_its_keys_at_once_and_is_audited(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    team = gateway.admin("POST", "/admin/teams", json={"name": "regulated"}).json()
    made = gateway.create_key([gateways.MODEL], team_id=team["id"])
    assert chat(gateway, made["key"], f"mail {EMAIL}").status_code == 200
    assert upstream.requests[-1].body["messages"][0]["content"] == "mail [EMAIL]"

    path = f"/admin/teams/{team['id']}/guardrails"
    changed = gateway.admin("PUT", path, json={"policy": "strict"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["metadata"]["guardrail_policy"] == "strict"
    refused = chat(gateway, made["key"], f"mail {EMAIL}")
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "email"

    assert gateway.admin("PUT", path, json={"policy": "no-such-policy"}).status_code == 200
    unknown = chat(gateway, made["key"], "hello")
    assert unknown.status_code == 403
    assert unknown.json()["error"]["code"] == "guardrail_policy_unknown"

    assert gateway.admin("PUT", path, json={"policy": None}).status_code == 200
    assert chat(gateway, made["key"], f"mail {EMAIL}").status_code == 200

    audit = gateway.admin("GET", "/admin/audit").json()["data"]
    set_policy = [
        e["detail"]["policy"]
        for e in reversed(audit)
        if e["action"] == "team.guardrails" and e["target"] == f"team:{team['id']}"
    ]
    assert set_policy == ["strict", "no-such-policy", None]
    assert (
        gateway.admin("PUT", "/admin/teams/nope/guardrails", json={"policy": "strict"}).status_code
        == 404
    )
    assert gateway.admin("PUT", path, json={"policy": ""}).status_code in (400, 422)
