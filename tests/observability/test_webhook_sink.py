"""The webhook sink, end to end: a real gateway process delivers every spend record and every
inference request's access event to a real HTTP receiver on loopback exactly once, in signed
batches the receiver verifies, across refusals, an outage of the receiver and a restart of the
gateway; readiness and metrics show the backlog."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.governance.sink_events import DELIVERING_FILE, OUTBOX_FILE
from tests.governance import gateways
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess, free_port
from tests.support.webhook_receiver import WebhookReceiver

SECRET = "whsec-test-3f1c2b9a7d"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(SECRET, free_port()).start()
    yield server
    server.stop()


def sink_config(
    upstream: FakeUpstream,
    receiver: WebhookReceiver,
    batch_size: int = 7,
    storage_timeout: float | None = None,
) -> str:
    return gateways.config(
        upstream,
        storage_timeout=storage_timeout,
        extra=f"""
sinks:
  - name: siem
    type: webhook
    url: {receiver.url}
    secret: env:SEALGATE_TEST_SINK_SECRET
    allow_private_network: true
    batch_size: {batch_size}
    timeout_seconds: 2
    backoff_seconds: 0.05
    backoff_max_seconds: 0.4
    poll_seconds: 0.1
""",
    )


def gateway(workdir: Path, text: str) -> GatewayProcess:
    return GatewayProcess(workdir, text, env={"SEALGATE_TEST_SINK_SECRET": SECRET}).start()


def wait_for_events(
    receiver: WebhookReceiver, count: int, timeout: float = 30, type_: str = "spend"
) -> None:
    deadline = time.monotonic() + timeout
    while len(of_type(receiver, type_)) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def of_type(receiver: WebhookReceiver, type_: str) -> list[dict[str, Any]]:
    return [event for event in receiver.events() if event["type"] == type_]


def spend_ids(process: GatewayProcess) -> list[str]:
    body = process.admin("GET", "/admin/spend/logs", params={"limit": 1000}).json()
    return sorted(record["id"] for record in body["data"])


def sink_health(process: GatewayProcess) -> dict[str, object]:
    checks = process.admin("GET", "/health/ready").json()["checks"]
    health: dict[str, object] = checks["sinks"]["siem"]
    return health


def test_every_record_reaches_the_receiver_once_across_an_outage_and_a_restart(
    upstream: FakeUpstream, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    text = sink_config(upstream, receiver)
    process = gateway(tmp_path, text)
    try:
        key = process.create_key([gateways.MODEL])["key"]
        assert gateways.hammer([process], key, 10, workers=4) == [200] * 10
        wait_for_events(receiver, 10)
        assert len(of_type(receiver, "spend")) == 10
        receiver.refusing = True  # answers 503: retried with backoff, nothing kept twice
        assert gateways.hammer([process], key, 5, workers=4) == [200] * 5
        deadline = time.monotonic() + 10
        while receiver.refused < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        receiver.refusing = False
        receiver.stop()  # gone: connections refused
        assert gateways.hammer([process], key, 6, workers=4) == [200] * 6
        health = sink_health(process)
        assert health["failing"] is not None
        process.stop()  # a restart while the receiver is still down
        process = gateway(tmp_path, text)
        assert gateways.hammer([process], key, 4, workers=4) == [200] * 4
        receiver.start()
        wait_for_events(receiver, 25)
        wait_for_events(receiver, 25, type_="access")
        time.sleep(0.3)  # anything sent twice would have come by now
        events = of_type(receiver, "spend")
        ids = [event["id"] for event in events]
        assert len(ids) == 25
        assert sorted(ids) == spend_ids(process)  # every record, each once
        assert {event["type"] for event in receiver.events()} == {"spend", "access"}
        assert all(event["data"]["model"] == gateways.MODEL for event in events)
        assert all(event["data"]["cost_nanos"] == gateways.COST_NANOS for event in events)
        accessed = of_type(receiver, "access")  # every inference request's, each once
        assert len({event["id"] for event in accessed}) == len(accessed) == 25
        assert sorted(event["data"]["spend_id"] for event in accessed) == spend_ids(process)
        assert all(event["data"]["status"] == 200 for event in accessed)
        assert all(event["data"]["path"] == "/v1/chat/completions" for event in accessed)
        assert receiver.bad_signatures == 0
        assert all(len(body) > 0 for body in receiver.bodies)
        wait_until_backlog_is(process, 0)
        metrics = process.admin("GET", "/metrics").text
        assert 'sealgate_sink_backlog{sink="siem"} 0' in metrics
        assert 'sealgate_sink_events_total{sink="siem"}' in metrics
    finally:
        process.stop()


def test_access_events_wait_in_a_file_with_no_content_and_no_key_while_the_database_is_locked(
    upstream: FakeUpstream, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    marker = "prompt-text-that-must-stay-out-of-files-7c2e"
    process = gateway(tmp_path, sink_config(upstream, receiver, storage_timeout=0.5))
    outbox = process.data_dir / OUTBOX_FILE
    lock: sqlite3.Connection | None = None
    try:
        key = process.create_key([gateways.MODEL])["key"]
        assert gateways.chat(process, key).status_code == 200  # the key is in the auth cache
        wait_for_events(receiver, 1, type_="access")
        lock = sqlite3.connect(process.data_dir / "sealgate.db", isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")  # another writer: every write of the gateway times out
        message = [{"role": "user", "content": marker}]
        for _ in range(5):
            assert gateways.chat(process, key, messages=message).status_code == 200
        deadline = time.monotonic() + 15
        while outbox.read_bytes().count(b"\n") < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        held = outbox.read_bytes()
        assert held.count(b"\n") == 5
        assert marker.encode() not in held
        assert key.encode() not in held and b"Bearer" not in held
        lines = [json.loads(text) for text in held.splitlines()]
        assert {entry["type"] for entry in lines} == {"access"}
        assert all(entry["data"]["path"] == "/v1/chat/completions" for entry in lines)
        assert len(of_type(receiver, "access")) == 1
        lock.execute("ROLLBACK")
        lock.close()
        lock = None
        wait_for_events(receiver, 6, type_="access")
        time.sleep(0.3)  # anything sent twice would have come by now
        accessed = of_type(receiver, "access")
        assert len({event["id"] for event in accessed}) == len(accessed) == 6
        assert {entry["id"] for entry in lines} < {event["id"] for event in accessed}
        assert outbox.stat().st_size == 0
        assert not (process.data_dir / DELIVERING_FILE).exists()
    finally:
        if lock is not None:
            lock.close()
        process.stop()


def wait_until_backlog_is(process: GatewayProcess, count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while sink_health(process)["backlog"] != count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sink_health(process)["backlog"] == count


def test_the_signature_verifies_with_the_secret_and_not_without_it(
    upstream: FakeUpstream, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    process = gateway(tmp_path, sink_config(upstream, receiver, batch_size=100))
    try:
        key = process.create_key([gateways.MODEL])["key"]
        assert gateways.hammer([process], key, 3, workers=1) == [200] * 3
        wait_for_events(receiver, 3)
    finally:
        process.stop()
    assert receiver.bad_signatures == 0
    body = receiver.bodies[0]
    good = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert receiver.verifies(body, good)
    assert not receiver.verifies(body + b" ", good)  # a changed body no longer matches
    assert not WebhookReceiver("another-secret", 0).verifies(body, good)


def test_a_sink_url_on_loopback_without_allow_private_network_names_its_line(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    text = gateways.config(
        upstream,
        extra="""
sinks:
  - name: siem
    type: webhook
    url: http://127.0.0.1:9/hook
    secret: env:SEALGATE_TEST_SINK_SECRET
""",
    )
    process = GatewayProcess(tmp_path, text).start(wait=False)
    assert process.wait_exit() != 0
    assert "sinks.0.url (line" in process.stderr()
    assert "allow_private_network" in process.stderr()
