"""Leak canary: a unique provider key and a unique Vault token are planted, traffic that goes
wrong in every way we know is run through a real gateway process, and then everything the process
produced is searched for them: answers and their headers, streams, the log, /metrics (label
values included), and every file it wrote (the SQLite database and its WAL as they are while it
runs, and after it stopped). Since issue 12 the upstream also puts the key in its error codes and
in an error event in the middle of a stream (since issue 14 on /v1/responses and
/v1/completions too). Since issue 17 the search also covers the access log
(one line per request, every status), the spend logs API and the histogram families, and the
caller's virtual key is a canary too; and the webhook sink's bodies as a real receiver got them
(its signing secret is a canary as well), and the S3 sink's objects as moto's S3 server
stored them (its secret access key too). Since issue 17's second pass: the access events each sink
receives (the webhook's, the S3 objects', the OTLP logs sink's), the OTLP logs sink's exports and
the trace exports, both as a real OTLP/HTTP receiver got them (the exports' header tokens are
canaries as well)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
import pytest

from tests.secrets.gateway_vault import HI, VaultGateway
from tests.secrets.openbao_server import OpenBao
from tests.secrets.vaultlab import VaultLab
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import free_port
from tests.support.moto_s3 import MotoS3
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.openbao


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def spend_rows_reached(gw: VaultGateway, expected: int) -> bool:
    report = gw.process.admin("GET", "/admin/reports/spend", params={"group_by": "key"})
    return report.status_code == 200 and report.json()["totals"]["requests"] >= expected


def test_no_provider_key_or_vault_token_appears_in_anything_the_gateway_produced(
    bao_lab: VaultLab, upstream: FakeUpstream, tmp_path: Path
) -> None:
    bao = bao_lab.server
    assert isinstance(bao, OpenBao)
    provider_key = "sk-canary-" + secrets.token_hex(20)
    vault_token = "sgcanaryvaulttoken" + secrets.token_hex(16)
    bao_lab.root.sys.create_or_update_policy(
        name="canary", policy=bao_lab.read_policy(f"{bao_lab.kv2}/data/*")
    )
    bao_lab.root.auth.token.create(id=vault_token, policies=["canary"], ttl="1h")
    workdir, scratch = tmp_path / "gateway", tmp_path / "gateway" / "tmp"
    scratch.mkdir(parents=True)
    sink_secret = "sgcanarysinksecret" + secrets.token_hex(16)
    receiver = WebhookReceiver(sink_secret, free_port()).start()
    s3 = MotoS3(free_port()).start()
    s3.client().create_bucket(Bucket=s3.bucket)
    s3.require_signatures()
    otlp = OtlpReceiver().start()
    otlp_token = "sgcanaryotlpheader" + secrets.token_hex(16)
    sink = (
        f"sinks:\n  - {{name: siem, type: webhook, url: '{receiver.url}', "
        "secret: 'env:SEALGATE_CANARY_SINK_SECRET', allow_private_network: true, "
        "poll_seconds: 0.1}\n"
        f"  - {{name: archive, type: s3, endpoint: '{s3.endpoint}', bucket: {s3.bucket}, "
        "access_key_id: 'env:SEALGATE_CANARY_S3_KEY_ID', "
        "secret_access_key: 'env:SEALGATE_CANARY_S3_SECRET', allow_private_network: true, "
        "poll_seconds: 0.1}\n"
        f"  - {{name: collector, type: otlp_logs, endpoint: '{otlp.url}/v1/logs', "
        "headers: {authorization: 'env:SEALGATE_CANARY_OTLP_TOKEN'}, "
        "allow_private_network: true, poll_seconds: 0.1}\n"
        f"tracing: {{enabled: true, endpoint: '{otlp.url}/v1/traces', propagate_upstream: true, "
        "headers: {authorization: 'env:SEALGATE_CANARY_OTLP_TRACES_TOKEN'}}\n"
    )
    sink_env = {
        "SEALGATE_CANARY_SINK_SECRET": sink_secret,
        "SEALGATE_CANARY_S3_KEY_ID": s3.access_key,
        "SEALGATE_CANARY_S3_SECRET": s3.secret_key,
        "SEALGATE_CANARY_OTLP_TOKEN": otlp_token,
        "SEALGATE_CANARY_OTLP_TRACES_TOKEN": otlp_token + "t",
    }
    gw = VaultGateway(
        bao_lab,
        upstream,
        workdir,
        provider_key,
        token=vault_token,
        env={"TMPDIR": str(scratch), **sink_env},
        ttl=1,
        extra="logging:\n  level: debug\n" + sink,
    )
    gw.start()
    bodies: list[str] = []

    def keep(response: httpx.Response) -> httpx.Response:
        bodies.append(response.text)
        bodies.append(str(response.headers))
        return response

    try:
        assert keep(gw.chat()).status_code == 200
        stream = keep(gw.chat(stream=True, stream_options={"include_usage": True}))
        assert stream.status_code == 200
        echo = f"Incorrect API key provided: {provider_key}"
        upstream.then(status=401, error_message=echo).then(status=401, error_message=echo)
        assert keep(gw.chat()).status_code == 502
        upstream.then(status=500, error_message=echo)
        assert keep(gw.chat()).status_code == 502
        upstream.then(status=400, error_message=echo)
        assert keep(gw.chat()).status_code == 400
        # the key as an upstream's error code: passed on only if it were a known code
        for status in (400, 404, 422, 429, 500):
            upstream.then(status=status, error_code=provider_key, error_message="no")
            assert keep(gw.chat()).status_code in (400, 404, 422, 429, 502)
        upstream.then(status=400, error_code=f"invalid_api_key:{provider_key}")
        assert keep(gw.chat()).status_code == 400
        # the key in an error event in the middle of a stream, in its message and its code
        upstream.then(stream_error=echo).then(stream_error="no", error_code=provider_key)
        for _ in range(2):
            streamed = keep(gw.chat(stream=True))
            assert streamed.status_code == 200 and "event: error" in streamed.text

        # issue 14: the Responses and legacy completions routes, their answers, streams and
        # errors (the upstream echoing the key in an error body and in a mid-stream event)
        def post(path: str, **body: object) -> httpx.Response:
            return httpx.post(
                gw.process.url + path,
                json={"model": "vault-gpt", **body},
                headers={"Authorization": f"Bearer {gw.key}"},
                timeout=60,
            )

        assert keep(post("/v1/responses", input="hi")).status_code == 200
        assert keep(post("/v1/responses", input="hi", stream=True)).status_code == 200
        assert keep(post("/v1/completions", prompt="hi")).status_code == 200
        upstream.then(status=400, error_message=echo).then(status=400, error_message=echo)
        assert keep(post("/v1/responses", input="hi")).status_code == 400
        assert keep(post("/v1/completions", prompt="hi")).status_code == 400
        upstream.then(stream_error=echo)
        streamed = keep(post("/v1/responses", input="hi", stream=True))
        assert streamed.status_code == 200 and "event: error" in streamed.text
        for wrong in ("sk-sg-" + secrets.token_hex(20), provider_key, vault_token, "garbage"):
            assert keep(gw.chat(key=wrong)).status_code == 401
        metrics = keep(gw.process.admin("GET", "/metrics"))
        assert metrics.status_code == 200
        assert "sealgate_upstream_failures_total" in metrics.text
        assert "sealgate_request_duration_seconds_bucket" in metrics.text
        deadline = time.monotonic() + 20  # every spend row written, its status among them
        while time.monotonic() < deadline and not spend_rows_reached(gw, 13):
            time.sleep(0.1)
        spend_logs = keep(gw.process.admin("GET", "/admin/spend/logs", params={"limit": 1000}))
        assert len(spend_logs.json()["data"]) >= 13
        while time.monotonic() < deadline and len(receiver.events()) < 13:
            time.sleep(0.1)
        assert len(receiver.events()) >= 13 and receiver.bad_signatures == 0
        while time.monotonic() < deadline and len(s3.events()) < 13:
            time.sleep(0.1)
        stored = s3.objects()
        assert len(s3.events()) >= 13
        # every inference request's access event, each sink (the 401s' among them)
        while time.monotonic() < deadline and len(otlp.log_records()) < 13 + 17:
            time.sleep(0.1)
        assert sum(e["type"] == "access" for e in receiver.events()) >= 17
        assert sum(e["type"] == "access" for e in s3.events()) >= 17
        assert sum(r.event_name == "sealgate.access" for r in otlp.log_records()) >= 17
        running = [p.read_bytes().decode("latin-1") for p in files_under(gw.process.data_dir)]
        assert any(p.name.endswith("-wal") for p in files_under(gw.process.data_dir))
        ready = keep(gw.ready())
        process = ready.json()["checks"]["process"]
        assert process["not_dumpable"] is True
        assert process["core_dumps_off"] is True
        assert gw.process.process is not None
        limits = Path(f"/proc/{gw.process.process.pid}/limits").read_text()
        core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
        assert core.split()[4:6] == ["0", "0"]

        bao.stop()
        time.sleep(1.5)  # past the TTL
        assert keep(gw.chat()).status_code == 503
        assert keep(gw.ready()).status_code == 503
        keep(
            httpx.post(
                gw.process.url + "/v1/chat/completions",
                json={"model": "vault-gpt", "messages": [HI], "api_key": provider_key},
                headers={"Authorization": f"Bearer {gw.key}"},
                timeout=30,
            )
        )
    finally:
        gw.stop()
        receiver.stop()
        otlp.stop()
        s3.trust_everyone()  # moto's settings are this process's: leave them as found
        s3.stop()

    stderr = gw.process.stderr()
    assert '"level": "debug"' in stderr  # the log was captured at every level
    assert "credential" in stderr  # and it did record the failures (by reference)
    assert stderr.count('"logger": "sealgate.access"') >= 20  # and an access line per request
    searched = [*bodies, stderr, *running, *(b.decode("latin-1") for b in receiver.bodies)]
    searched += [body.decode("latin-1") for body in stored.values()]
    assert otlp.spans and otlp.logs  # traces and log records were exported, and are searched
    searched += [body.decode("latin-1") for body in otlp.raw]
    searched += [p.read_bytes().decode("latin-1") for p in files_under(workdir)]
    assert files_under(gw.process.data_dir)  # the database is among them
    canaries = (provider_key, vault_token, provider_key[-20:], vault_token[-16:], gw.key)
    for canary in (*canaries, sink_secret, s3.secret_key, otlp_token):
        leaks = [text[:200] for text in searched if canary in text]
        assert leaks == []
