"""SIGHUP reloads the configuration of a running gateway: a valid file is swapped in without a
restart, an invalid one (or one that changes a restart-only setting) leaves the old one serving
with a log line saying why, and a request under way finishes on the config it started with."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

RELOAD_SECONDS = 15.0

MOCK = """
deployments:
  - model: mock-gpt
    provider: mock
verify:
  mode: "off"
"""
WITH_UPSTREAM = """
deployments:
  - model: mock-gpt
    provider: mock
  - model: fake-gpt
    provider: openai_compatible
    base_url: {upstream}/v1
    allow_private_network: true
verify:
  mode: "off"
governance:
  deployments:
    fake-gpt/openai_compatible: {{prices: {{input: "1", output: "2"}}}}
"""


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path / "gw", MOCK).start()
    yield process
    process.stop()


def hang_up(gateway: GatewayProcess, text: str) -> None:
    assert gateway.config_path is not None and gateway.process is not None
    gateway.config_path.write_text(text)
    gateway.process.send_signal(signal.SIGHUP)


def models(gateway: GatewayProcess, key: str) -> list[str]:
    answer = httpx.get(
        gateway.url + "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=5
    )
    assert answer.status_code == 200, answer.text
    return sorted(m["id"] for m in answer.json()["data"])


def wait_for(predicate: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + RELOAD_SECONDS
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"not seen within {RELOAD_SECONDS}s: {what}")


def log_lines(gateway: GatewayProcess, message: str) -> list[dict[str, object]]:
    lines = []
    for line in gateway.stderr().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("msg") == message:
                lines.append(entry)
    return lines


def chat(gateway: GatewayProcess, key: str, model: str, **extra: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_a_valid_file_is_swapped_in_on_sighup_without_a_restart(gateway: GatewayProcess) -> None:
    key = gateway.create_key(["*"])["key"]
    assert models(gateway, key) == ["mock-gpt"]
    hang_up(
        gateway,
        MOCK.replace(
            "    provider: mock\n", "    provider: mock\n  - model: mock-two\n    provider: mock\n"
        ),
    )
    wait_for(lambda: models(gateway, key) == ["mock-gpt", "mock-two"], "mock-two served")
    assert chat(gateway, key, "mock-two").status_code == 200
    assert gateway.process is not None and gateway.process.poll() is None
    assert log_lines(gateway, "configuration reloaded")


def test_an_invalid_file_leaves_the_old_config_serving_and_says_why(
    gateway: GatewayProcess,
) -> None:
    key = gateway.create_key(["*"])["key"]
    hang_up(gateway, MOCK + "  colour: red\n")
    message = "configuration not reloaded; still serving the previous one"
    wait_for(lambda: log_lines(gateway, message), "the refusal")
    (refused,) = log_lines(gateway, message)
    assert gateway.config_path is not None
    assert refused["reason"] == f"{gateway.config_path}: verify.colour (line 7): is not a known key"
    assert models(gateway, key) == ["mock-gpt"]
    assert chat(gateway, key, "mock-gpt").status_code == 200


def test_a_file_changing_a_restart_only_setting_is_refused_whole_naming_the_setting(
    gateway: GatewayProcess,
) -> None:
    key = gateway.create_key(["*"])["key"]
    changed = MOCK.replace(
        "    provider: mock\n", "    provider: mock\n  - model: mock-two\n    provider: mock\n"
    )
    hang_up(gateway, changed + "secrets:\n  ttl_seconds: 10\n")
    message = "configuration not reloaded; still serving the previous one"
    wait_for(lambda: log_lines(gateway, message), "the refusal")
    (refused,) = log_lines(gateway, message)
    assert "secrets: changed, and takes effect only on a restart" in str(refused["reason"])
    assert models(gateway, key) == ["mock-gpt"]  # nothing of the file was applied


def test_a_stream_under_way_finishes_on_the_config_it_started_with(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    text = WITH_UPSTREAM.format(upstream=upstream.base_url)
    gateway = GatewayProcess(tmp_path / "gw", text).start()
    try:
        key = gateway.create_key(["*"])["key"]
        upstream.then(chunk_delay=0.3)  # about 2.4 s of stream
        result: dict[str, str] = {}

        def stream() -> None:
            with httpx.stream(
                "POST",
                gateway.url + "/v1/chat/completions",
                json={
                    "model": "fake-gpt",
                    "messages": [{"role": "user", "content": "x"}],
                    "stream": True,
                },
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            ) as answer:
                result["status"] = str(answer.status_code)
                result["body"] = answer.read().decode()

        reader = threading.Thread(target=stream)
        reader.start()
        wait_for(lambda: upstream.requests, "the stream reached the upstream")
        hang_up(gateway, MOCK)  # fake-gpt is gone from the new config
        wait_for(lambda: models(gateway, key) == ["mock-gpt"], "the reload")
        reader.join(30)
        assert result["status"] == "200"
        assert result["body"].endswith("data: [DONE]\n\n")
        assert FakeUpstream.REPLY_TEXT.split()[-1] in result["body"]
        assert upstream.completed_streams == 1
        assert chat(gateway, key, "fake-gpt").status_code == 404  # new requests: new config
    finally:
        gateway.stop()
