"""The external guardrail through a running gateway: a real HTTP peer on loopback plays the
operator's webhook. It is asked before the call with the texts only (no header, no key, every
secret masked), and again about the complete answer before the client sees it; its block (of
either) is a 400 naming it; when it cannot be reached, a fail-closed policy
refuses the request (503) and a fail-open one lets it through; a host off the egress allowlist
is refused at start-up. The answer stages hold on every route that asks chat underneath (chat,
Responses, legacy completions), and a refused answer is recorded as refused."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web

from gateway.errors import ConfigError
from gateway.guardrails.webhook import check_egress
from gateway.serve import parse_config
from tests.support.gateway_process import GatewayProcess, free_port

SECRET = "ghp_" + "Zx9Qw3Er7Ty1Ui5Op0As2Df4Gh6Jk8Lm0Nb2"
CONFIG = """
deployments:
  - {{model: judged, provider: mock}}
  - {{model: closed, provider: mock}}
  - {{model: opened, provider: mock}}
  - {{model: answers-closed, provider: mock}}
verify:
  mode: "off"
governance:
  default_prices: {{input: "0"}}
guardrails:
  models: {{judged: judged, closed: closed, opened: opened, answers-closed: answers-closed}}
  policies:
    judged:
      webhook: {{url: "http://127.0.0.1:{port}/check", allow_private_network: true}}
    closed:
      webhook: {{url: "http://127.0.0.1:{dead}/check", allow_private_network: true,
                 timeout_seconds: 1}}
    opened:
      webhook: {{url: "http://127.0.0.1:{dead}/check", allow_private_network: true,
                 timeout_seconds: 1, on_error: fail_open}}
    answers-closed:
      webhook: {{url: "http://127.0.0.1:{dead}/check", allow_private_network: true,
                 timeout_seconds: 1, stages: [response]}}
"""


class Judge:
    """The webhook: answers block when a text says 'forbidden', or when an answer says 'block
    my answer'; allow otherwise; keeps what it was sent."""

    def __init__(self) -> None:
        self.port = free_port()
        self.seen: list[tuple[dict[str, str], Any]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _check(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.seen.append((dict(request.headers), body))
        answer = body["stage"] == "response"
        bad = [t for t in body["texts"] if "forbidden" in t or (answer and "block my answer" in t)]
        verdict = "block" if bad else "allow"
        return web.json_response({"verdict": verdict})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/check", self._check)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def start(self) -> Judge:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def judge() -> Iterator[Judge]:
    server = Judge().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(judge: Judge, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = CONFIG.format(port=judge.port, dead=free_port())
    process = GatewayProcess(tmp_path_factory.mktemp("webhook"), config).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> openai.OpenAI:
    key = gateway.create_key(["judged", "closed", "opened", "answers-closed"])["key"]
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def ask(client: openai.OpenAI, model: str, text: str) -> str:
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}]
    )
    return answer.choices[0].message.content or ""


def test_the_webhook_is_sent_the_texts_only_with_secrets_masked_and_no_credential(
    client: openai.OpenAI, judge: Judge
) -> None:
    ask(client, "judged", f"why does {SECRET} not work?")
    headers, body = judge.seen[-2]
    assert body == {
        "stage": "request",
        "model": "judged",
        "texts": ["why does [GITHUB_TOKEN] not work?"],
    }
    sent = json.dumps([headers, body])
    assert SECRET not in sent and client.api_key not in sent
    assert "authorization" not in {k.lower() for k in headers}


def test_the_webhook_is_asked_about_the_answer_too_with_its_secrets_masked(
    client: openai.OpenAI, judge: Judge
) -> None:
    ask(client, "judged", f"repeat {SECRET} please")  # the mock's answer repeats the prompt
    headers, body = judge.seen[-1]
    assert body["stage"] == "response" and body["model"] == "judged"
    assert body["texts"] == ["Mock answer from Sealgate to: repeat [GITHUB_TOKEN] please"]
    assert SECRET not in json.dumps([headers, body])


def test_the_webhooks_block_of_an_answer_refuses_it_after_the_request_was_allowed(
    client: openai.OpenAI, judge: Judge
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, "judged", "please block my answer")
    error = caught.value.response.json()["error"]
    assert error["code"] == "guardrail_blocked" and error["param"] == "webhook:judged"
    assert [body["stage"] for _, body in judge.seen[-2:]] == ["request", "response"]
    assert "block my answer" not in caught.value.response.text


ROUTES = ["chat", "responses", "completions"]


def ask_on(route: str, client: openai.OpenAI, model: str, text: str) -> None:
    """One JSON call on one of the routes that ask chat underneath."""
    if route == "chat":
        ask(client, model, text)
    elif route == "responses":
        client.responses.create(model=model, input=text)
    else:
        client.completions.create(model=model, prompt=text)


def spend_status(gateway: GatewayProcess, key_id: str) -> list[str]:
    rows = gateway.admin("GET", "/admin/spend/logs", params={"key_id": key_id}).json()["data"]
    return [row["status"] for row in rows]


@pytest.mark.parametrize("route", ROUTES)
def test_the_webhook_judges_the_answer_on_every_route_that_asks_chat_and_the_block_is_recorded(
    gateway: GatewayProcess, judge: Judge, route: str
) -> None:
    made = gateway.create_key(["judged"])
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=made["key"], max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        ask_on(route, client, "judged", "please block my answer")
    error = caught.value.response.json()["error"]
    assert error["code"] == "guardrail_blocked" and error["param"] == "webhook:judged"
    assert [body["stage"] for _, body in judge.seen[-2:]] == ["request", "response"]
    assert spend_status(gateway, made["id"]) == ["guardrail_blocked"]


@pytest.mark.parametrize("route", ROUTES)
def test_a_fail_closed_answer_webhook_that_cannot_be_reached_refuses_the_answer_on_every_route(
    gateway: GatewayProcess, route: str
) -> None:
    made = gateway.create_key(["answers-closed"])
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=made["key"], max_retries=0)
    with pytest.raises(openai.InternalServerError) as caught:
        ask_on(route, client, "answers-closed", "hello")
    assert caught.value.status_code == 503
    assert caught.value.response.json()["error"]["code"] == "guardrail_unavailable"
    assert "Mock answer" not in caught.value.response.text
    assert spend_status(gateway, made["id"]) == ["guardrail_unavailable"]


def test_the_webhooks_block_is_a_guardrail_blocked_naming_the_webhook(
    client: openai.OpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, "judged", "this is forbidden")
    error = caught.value.response.json()["error"]
    assert error["code"] == "guardrail_blocked" and error["param"] == "webhook:judged"


def test_a_fail_closed_webhook_that_cannot_be_reached_refuses_the_request(
    client: openai.OpenAI,
) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client, "closed", "hello")
    assert caught.value.status_code == 503
    assert caught.value.response.json()["error"]["code"] == "guardrail_unavailable"


def test_a_fail_open_webhook_that_cannot_be_reached_lets_the_request_through(
    client: openai.OpenAI, gateway: GatewayProcess
) -> None:
    assert ask(client, "opened", "hello")
    metrics = gateway.admin("GET", "/metrics").text
    assert 'sealgate_guardrail_webhook_failures_total{policy="opened",mode="fail_open"}' in metrics


def test_a_webhook_host_off_the_egress_allowlist_is_refused_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "egress.yaml").write_text("version: 1\nproviders: {openai: {hosts: [x.io]}}\n")
    config = parse_config(
        "deployments: [{model: m, provider: mock}]\nguardrails:\n  policies:\n"
        "    p: {webhook: {url: 'https://guard.example.com/check'}}\n",
        "gw.yaml",
    )
    with pytest.raises(ConfigError) as caught:
        check_egress(config.guardrails, tmp_path)
    assert "guardrails.policies.p.webhook.url" in str(caught.value)
    assert "not on the egress allowlist for guardrail_webhook" in str(caught.value)
