"""The S3-compatible sink, end to end against a real S3 implementation on loopback (moto's
server mode, with its request authentication turned on, so a PUT whose SigV4 signature does not
match an IAM user's key is refused): a real gateway process puts every spend record into JSONL
objects exactly once, across an outage of the store and a restart of the gateway; a wrong secret
gets nothing in; the objects hold no key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.governance import gateways
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess, free_port
from tests.support.moto_s3 import MotoS3


@pytest.fixture
def s3() -> Iterator[MotoS3]:
    server = MotoS3(free_port()).start()
    server.client().create_bucket(Bucket=server.bucket)
    server.require_signatures()
    yield server
    if server.server is None:
        server.start()
    server.trust_everyone()  # moto's settings are this process's: leave them as found
    server.stop()


def s3_config(upstream: FakeUpstream, s3: MotoS3) -> str:
    return gateways.config(
        upstream,
        extra=f"""
sinks:
  - name: archive
    type: s3
    endpoint: {s3.endpoint}
    bucket: {s3.bucket}
    access_key_id: env:SEALGATE_TEST_S3_ACCESS_KEY
    secret_access_key: env:SEALGATE_TEST_S3_SECRET_KEY
    allow_private_network: true
    batch_size: 6
    timeout_seconds: 2
    backoff_seconds: 0.05
    backoff_max_seconds: 0.4
    poll_seconds: 0.1
""",
    )


def gateway(workdir: Path, text: str, s3: MotoS3) -> GatewayProcess:
    env = {
        "SEALGATE_TEST_S3_ACCESS_KEY": s3.access_key,
        "SEALGATE_TEST_S3_SECRET_KEY": s3.secret_key,
    }
    return GatewayProcess(workdir, text, env=env).start()


def wait_for(
    s3: MotoS3, count: int, timeout: float = 30, type_: str = "spend"
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    events = [e for e in s3.events() if e["type"] == type_]
    while len(events) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        events = [e for e in s3.events() if e["type"] == type_]
    return events


def test_every_record_lands_in_s3_once_across_an_outage_and_a_restart(
    upstream: FakeUpstream, s3: MotoS3, tmp_path: Path
) -> None:
    text = s3_config(upstream, s3)
    process = gateway(tmp_path, text, s3)
    try:
        key = process.create_key([gateways.MODEL])["key"]
        assert gateways.hammer([process], key, 8, workers=4) == [200] * 8
        assert len(wait_for(s3, 8)) == 8, process.stderr()[-1500:]
        s3.stop()  # the store is gone (its objects are kept in moto's memory)
        assert gateways.hammer([process], key, 5, workers=4) == [200] * 5
        deadline = time.monotonic() + 10
        checks = process.admin("GET", "/health/ready").json()["checks"]
        while checks["sinks"]["archive"]["failing"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
            checks = process.admin("GET", "/health/ready").json()["checks"]
        assert checks["sinks"]["archive"]["failing"] is not None
        process.stop()  # restarted while the store is still away
        process = gateway(tmp_path, text, s3)
        assert gateways.hammer([process], key, 3, workers=3) == [200] * 3
        s3.start()
        events = wait_for(s3, 16)
        accessed = wait_for(s3, 16, type_="access")
        ids = sorted(event["id"] for event in events)
        logged = process.admin("GET", "/admin/spend/logs", params={"limit": 1000}).json()
        assert len(ids) == 16, process.stderr()[-3000:]
        assert ids == sorted(record["id"] for record in logged["data"])
        assert {event["type"] for event in s3.events()} == {"spend", "access"}
        # every inference request's access event, each once, beside its spend record
        assert len({event["id"] for event in accessed}) == len(accessed) == 16
        assert sorted(event["data"]["spend_id"] for event in accessed) == ids
        metrics = process.admin("GET", "/metrics").text
        assert 'sealgate_sink_failures_total{sink="archive"}' in metrics
        objects = s3.objects()
        assert all(name.startswith("sealgate/dt=") for name in objects)
        assert all(name.endswith(".jsonl") for name in objects)
        for body in objects.values():
            for canary in (s3.secret_key, s3.secret_key[-20:], key):
                assert canary.encode() not in body
    finally:
        process.stop()


def test_a_wrong_secret_key_is_refused_by_the_store_and_nothing_is_lost(
    upstream: FakeUpstream, s3: MotoS3, tmp_path: Path
) -> None:
    """The same sink with the right key id and a wrong secret: moto refuses every PUT (the
    signature does not match), so the right one above was signed correctly."""
    text = s3_config(upstream, s3).replace("SEALGATE_TEST_S3_SECRET_KEY", "SEALGATE_TEST_WRONG")
    env = {"SEALGATE_TEST_S3_ACCESS_KEY": s3.access_key, "SEALGATE_TEST_WRONG": "not-the-secret"}
    process = GatewayProcess(tmp_path, text, env=env).start()
    try:
        key = process.create_key([gateways.MODEL])["key"]
        assert gateways.hammer([process], key, 2, workers=2) == [200] * 2
        deadline = time.monotonic() + 10
        health = process.admin("GET", "/health/ready").json()["checks"]["sinks"]["archive"]
        while (health["failing"] is None or health["backlog"] < 4) and time.monotonic() < deadline:
            time.sleep(0.05)
            health = process.admin("GET", "/health/ready").json()["checks"]["sinks"]["archive"]
        assert health["failing"] == "status 403"
        assert health["backlog"] == 4  # two spend records, two access events
        assert s3.events() == []
    finally:
        process.stop()
