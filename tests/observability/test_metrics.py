"""The metrics (issue 17, item 2): after a scripted mix of requests, every family holds exactly
the counts that mix makes; ``/metrics`` is readable by the admin key, an unscoped viewer token
and a metrics token, and by nobody else; no label holds a key or anything a client chose."""

from __future__ import annotations

import time

import httpx

from tests.observability.conftest import (
    CHEAP,
    DEPLOYMENT,
    PROVIDER_KEY,
    chat,
    metric,
    samples,
)
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"


def test_every_family_counts_a_scripted_mix_exactly(
    observed: GatewayProcess, upstream: FakeUpstream
) -> None:
    key = observed.create_key(["gpt", "embed", "dead"])["key"]
    for _ in range(3):
        assert chat(observed, key).status_code == 200
    assert (
        chat(observed, key, stream=True, stream_options={"include_usage": True}).status_code == 200
    )
    upstream.then(status=500)
    failed = chat(observed, key)
    assert chat(observed, key, model="nope").status_code == 404
    assert chat(observed, "sk-sg-nobody-" + "q" * 30).status_code == 401
    dead = chat(observed, key, model="dead")
    embedded = httpx.post(
        observed.url + EMBED,
        json={"model": "embed", "input": "hi"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert embedded.status_code == 200

    text = observed.admin("GET", "/metrics").text
    found = samples(text)
    failure = str(failed.status_code)
    assert failure.startswith("5") and dead.status_code == 503

    def requests(route: str, model: str, deployment: str, status: str) -> float:
        return metric(
            found,
            "sealgate_request_duration_seconds_count",
            route=route,
            model=model,
            deployment=deployment,
            status=status,
        )

    assert requests(CHAT, "gpt", DEPLOYMENT, "200") == 4
    assert requests(CHAT, "gpt", "", failure) == 1
    assert requests(CHAT, "", "", "404") == 1
    assert requests(CHAT, "", "", "401") == 1
    assert requests(CHAT, "dead", "", "503") == 1
    assert requests(EMBED, "embed", CHEAP, "200") == 1
    every = [v for (n, _), v in found.items() if n == "sealgate_request_duration_seconds_count"]
    assert sum(every) == 9
    inf = metric(
        found,
        "sealgate_request_duration_seconds_bucket",
        route=CHAT,
        model="gpt",
        deployment=DEPLOYMENT,
        status="200",
        le="+Inf",
    )
    assert inf == 4

    ttft = dict(route=CHAT, model="gpt", deployment=DEPLOYMENT)
    assert metric(found, "sealgate_time_to_first_token_seconds_count", **ttft) == 1
    assert (
        sum(
            v
            for (n, _), v in found.items()
            if n.startswith("sealgate_time_to_first") and n.endswith("_count")
        )
        == 1
    )

    assert (
        metric(found, "sealgate_tokens_total", model="gpt", deployment=DEPLOYMENT, type="input")
        == 44
    )
    assert (
        metric(found, "sealgate_tokens_total", model="gpt", deployment=DEPLOYMENT, type="output")
        == 28
    )
    assert (
        metric(found, "sealgate_tokens_total", model="embed", deployment=CHEAP, type="input") == 3
    )
    assert metric(found, "sealgate_cost_usd_total", model="gpt", deployment=DEPLOYMENT) == 0.1
    assert metric(found, "sealgate_cost_usd_total", model="embed", deployment=CHEAP) == 0.003

    attempts = "sealgate_upstream_attempt_duration_seconds_count"
    assert metric(found, attempts, deployment=DEPLOYMENT, outcome="ok") == 4
    assert metric(found, attempts, deployment=DEPLOYMENT, outcome="upstream_error") == 1
    assert metric(found, attempts, deployment=CHEAP, outcome="ok") == 1
    assert metric(found, attempts, deployment="dead-gpt", outcome="upstream_unavailable") == 1
    assert (
        metric(
            found, "sealgate_upstream_failures_total", deployment=DEPLOYMENT, code="upstream_error"
        )
        == 1
    )

    assert metric(found, "sealgate_requests_in_flight", route=CHAT) == 0
    assert metric(found, "sealgate_requests_in_flight", route=EMBED) == 0
    # one credential reference, fetched once and then held in memory
    assert metric(found, "sealgate_secret_fetches_total", backend="env", outcome="ok") == 1
    assert metric(found, "sealgate_secret_fetch_duration_seconds_count", backend="env") == 1

    assert metric(found, "sealgate_requests_total", route=CHAT, status="200") == 4
    assert "# TYPE sealgate_request_duration_seconds histogram" in text
    assert key not in text and PROVIDER_KEY not in text and "nope" not in text


def test_metrics_are_readable_by_a_metrics_token_and_an_unscoped_viewer_only(
    observed: GatewayProcess,
) -> None:
    team = observed.admin("POST", "/admin/teams", json={"name": "blue"}).json()

    def token(role: str, team_id: str | None = None) -> str:
        response = observed.admin(
            "POST", "/admin/tokens", json={"role": role, "name": role, "team_id": team_id}
        )
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    def scrape(credential: str) -> int:
        headers = {"Authorization": f"Bearer {credential}"}
        return httpx.get(observed.url + "/metrics", headers=headers).status_code

    metrics_token = token("metrics")
    assert scrape(metrics_token) == 200
    assert scrape(token("viewer")) == 200
    assert scrape(token("viewer", team["id"])) == 403
    assert scrape(token("team_admin", team["id"])) == 403
    assert scrape(observed.create_key(["gpt"])["key"]) == 401
    assert httpx.get(observed.url + "/metrics").status_code == 401
    # a metrics token reads nothing else
    headers = {"Authorization": f"Bearer {metrics_token}"}
    assert httpx.get(observed.url + "/admin/teams", headers=headers).status_code == 403
    refused = observed.admin(
        "POST", "/admin/tokens", json={"role": "metrics", "name": "m", "team_id": team["id"]}
    )
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "team_id"


def test_team_budget_remaining_follows_the_teams_spend(
    observed: GatewayProcess, upstream: FakeUpstream
) -> None:
    team = observed.admin("POST", "/admin/teams", json={"name": "green"}).json()
    budget = observed.admin(
        "POST",
        "/admin/budgets",
        json={"scope": "team", "scope_id": team["id"], "period": "daily", "max_usd": "10.00"},
    )
    assert budget.status_code == 201, budget.text
    labels = {"team_id": team["id"], "budget_id": budget.json()["id"], "period": "daily"}
    name = "sealgate_team_budget_remaining_usd"
    assert metric(samples(observed.admin("GET", "/metrics").text), name, **labels) == 10.0
    key = observed.create_key(["gpt"], team_id=team["id"])["key"]
    for _ in range(4):
        assert chat(observed, key, max_tokens=16).status_code == 200  # 0.025 each
    # the gauge follows governance's refresh of spend from the database (refresh_seconds)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = metric(samples(observed.admin("GET", "/metrics").text), name, **labels)
        if left == 9.9:
            break
        time.sleep(0.2)
    assert left == 9.9
