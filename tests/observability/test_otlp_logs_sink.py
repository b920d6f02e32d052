"""The OTLP logs sink, end to end: a real gateway process exports every spend record and every
inference request's access event as OTLP/HTTP log records to a real OTLP receiver on loopback,
which decodes each export with the OpenTelemetry protobuf definitions (``opentelemetry-proto``).
Each event arrives exactly once across refusals, an outage of the receiver and a restart of the
gateway; the export's header comes by reference; no key or content is in any export."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.governance import gateways
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess, free_port
from tests.support.otlp_receiver import OtlpReceiver, ReceivedLog

EXPORT_TOKEN = "sgcanaryotlplogs" + secrets.token_hex(12)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver(port=free_port()).start()
    yield server
    server.stop()


def sink_config(upstream: FakeUpstream, receiver: OtlpReceiver) -> str:
    return gateways.config(
        upstream,
        extra=f"""
sinks:
  - name: collector
    type: otlp_logs
    endpoint: {receiver.url}/v1/logs
    headers: {{x-export-token: env:SEALGATE_TEST_OTLP_TOKEN}}
    service_name: sealgate-logs-under-test
    allow_private_network: true
    batch_size: 7
    timeout_seconds: 2
    backoff_seconds: 0.05
    backoff_max_seconds: 0.4
    poll_seconds: 0.1
""",
    )


def gateway(workdir: Path, text: str) -> GatewayProcess:
    return GatewayProcess(workdir, text, env={"SEALGATE_TEST_OTLP_TOKEN": EXPORT_TOKEN}).start()


def of_type(records: list[ReceivedLog], name: str) -> list[ReceivedLog]:
    return [r for r in records if r.event_name == name]


def wait_for(receiver: OtlpReceiver, name: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(of_type(receiver.log_records(), name)) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_every_spend_and_access_event_is_one_log_record_across_an_outage_and_a_restart(
    upstream: FakeUpstream, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    text = sink_config(upstream, receiver)
    process = gateway(tmp_path, text)
    try:
        key = process.create_key([gateways.MODEL])["key"]
        assert gateways.hammer([process], key, 6, workers=3) == [200] * 6
        wait_for(receiver, "sealgate.spend", 6)
        receiver.refusing = True  # 503: retried with backoff, nothing kept twice
        assert gateways.hammer([process], key, 4, workers=2) == [200] * 4
        deadline = time.monotonic() + 10
        while receiver.refused < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        receiver.refusing = False
        receiver.stop()  # gone: connections refused
        assert gateways.hammer([process], key, 3, workers=3) == [200] * 3
        process.stop()  # a restart while the receiver is still down
        process = gateway(tmp_path, text)
        assert gateways.hammer([process], key, 2, workers=2) == [200] * 2
        refused = httpx.post(process.url + "/v1/chat/completions", json=gateways.BODY)
        assert refused.status_code == 401  # no key: an access event too, of a refusal
        receiver.start()
        wait_for(receiver, "sealgate.spend", 15)
        wait_for(receiver, "sealgate.access", 16)
        time.sleep(0.5)  # anything sent twice would have come by now
        spend_ids = sorted(
            r["id"]
            for r in process.admin("GET", "/admin/spend/logs", params={"limit": 1000}).json()[
                "data"
            ]
        )
    finally:
        process.stop()

    records = receiver.log_records()
    spent = of_type(records, "sealgate.spend")
    assert sorted(r.attributes["sealgate.event.id"] for r in spent) == spend_ids  # each once
    assert all(r.body["cost_nanos"] == gateways.COST_NANOS for r in spent)
    assert all(r.severity == "INFO" and r.time_unix_nano > 0 for r in spent)

    accessed = of_type(records, "sealgate.access")
    ids = [r.attributes["sealgate.event.id"] for r in accessed]
    assert len(ids) == len(set(ids)) == 16  # every inference request, each once
    statuses = sorted(r.body["status"] for r in accessed)
    assert statuses == [200] * 15 + [401]
    answered = [r for r in accessed if r.body["status"] == 200]
    assert sorted(r.body["spend_id"] for r in answered) == spend_ids
    assert all(r.body["model"] == gateways.MODEL for r in answered)
    (refusal,) = [r for r in accessed if r.body["status"] == 401]
    assert refusal.severity == "WARN" and "key_id" not in refusal.body
    assert {r.service for r in records} == {"sealgate-logs-under-test"}
    assert all(h.get("x-export-token") == EXPORT_TOKEN for h in receiver.headers)
    assert all(h.get("content-type") == "application/x-protobuf" for h in receiver.headers)
    everything = b"".join(receiver.raw)
    assert key.encode() not in everything and EXPORT_TOKEN.encode() not in everything
    assert EXPORT_TOKEN not in process.stderr()


def test_an_export_header_that_is_a_literal_is_refused_at_start_naming_its_key(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    text = gateways.config(
        upstream,
        extra="""
sinks:
  - name: collector
    type: otlp_logs
    endpoint: http://127.0.0.1:9/v1/logs
    headers: {authorization: Bearer sgliteralsecret}
    allow_private_network: true
""",
    )
    process = GatewayProcess(tmp_path, text).start(wait=False)
    assert process.wait_exit() != 0
    assert "sinks.0.otlp_logs.headers (line" in process.stderr()
    assert "sgliteralsecret" not in process.stderr()
