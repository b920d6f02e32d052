"""Traces (issue 17, item 1): a gateway process with tracing on exports to a real OTLP/HTTP
receiver on loopback, which decodes every export with the OpenTelemetry protobuf definitions.
The request's span follows the GenAI semantic conventions and carries the limit check's duration;
each upstream attempt and the secret fetch are its children; a client's ``traceparent`` is the
parent, and with ``propagate_upstream`` the attempt's context reaches the upstream. No key, token
or content is in any span."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.observability.conftest import DEPLOYMENT, PROVIDER_KEY, chat, config
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess
from tests.support.otlp_receiver import OtlpReceiver

EXPORT_TOKEN = "sgcanaryotlptoken" + secrets.token_hex(12)
PROMPT = "canary prompt " + secrets.token_hex(8)
TRACE_ID = secrets.token_hex(16)
PARENT_ID = secrets.token_hex(8)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver().start()
    yield server
    server.stop()


def traced(upstream: FakeUpstream, receiver: OtlpReceiver, workdir: Path) -> GatewayProcess:
    extra = f"""tracing:
  enabled: true
  endpoint: {receiver.url}/v1/traces
  headers: {{x-export-token: env:OTLP_EXPORT_TOKEN}}
  propagate_upstream: true
  service_name: sealgate-under-test
"""
    env = {"OBSERVED_PROVIDER_KEY": PROVIDER_KEY, "OTLP_EXPORT_TOKEN": EXPORT_TOKEN}
    return GatewayProcess(workdir, config(upstream, extra), env=env).start()


def test_a_request_is_one_genai_span_with_its_limit_check_attempt_and_secret_fetch(
    upstream: FakeUpstream, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    gateway = traced(upstream, receiver, tmp_path)
    try:
        key = gateway.create_key(["gpt"], metadata={"project": "alpha"})["key"]
        traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
        answered = chat(
            gateway,
            key,
            headers={"traceparent": traceparent, "x-request-id": "traced-1"},
            messages=[{"role": "user", "content": PROMPT}],
        )
        assert answered.status_code == 200
        upstream.then(status=500)
        assert chat(gateway, key).status_code == 502
    finally:
        gateway.stop()  # the batch processor exports what it holds before the process ends

    (root,) = [s for s in receiver.named("chat gpt") if s.trace_id == TRACE_ID]
    assert root.kind == Span.SPAN_KIND_SERVER and root.service == "sealgate-under-test"
    assert (root.trace_id, root.parent_span_id) == (TRACE_ID, PARENT_ID)
    attributes = root.attributes
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt"
    assert attributes["gen_ai.response.model"] == "upstream-gpt"
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["gen_ai.usage.input_tokens"] == 11
    assert attributes["gen_ai.usage.output_tokens"] == 7
    assert attributes["http.response.status_code"] == 200
    assert attributes["sealgate.request_id"] == "traced-1"
    assert attributes["sealgate.deployment"] == DEPLOYMENT
    assert attributes["sealgate.project"] == "alpha"

    in_trace = [s for s in receiver.spans if s.trace_id == TRACE_ID]
    children = {s.name: s for s in in_trace if s.parent_span_id == root.span_id}
    # the limit check is a duration on the request's span, not a child that carries only times
    assert set(children) == {"chat upstream-gpt"}
    assert 0 < attributes["sealgate.limits.duration"] < 5
    attempt = children["chat upstream-gpt"]
    assert attempt.kind == Span.SPAN_KIND_CLIENT
    assert attempt.attributes["gen_ai.provider.name"] == "openai"
    assert attempt.attributes["sealgate.deployment"] == DEPLOYMENT
    (fetch,) = [s for s in in_trace if s.name == "sealgate.secret_fetch"]
    assert fetch.parent_span_id == attempt.span_id
    assert fetch.attributes == {"sealgate.secret.backend": "env"}

    # the attempt's context went upstream (W3C traceparent), the client's did not
    (seen,) = [r for r in upstream.requests if r.body and PROMPT in str(r.body)]
    assert seen.headers["traceparent"] == f"00-{TRACE_ID}-{attempt.span_id}-01"

    # the failing request: its own trace, the attempt marked with its error class
    (failed_root,) = [s for s in receiver.named("chat gpt") if s.trace_id != TRACE_ID]
    assert failed_root.status_code == Status.STATUS_CODE_ERROR
    assert failed_root.attributes["http.response.status_code"] == 502
    (failed_attempt,) = [
        s
        for s in receiver.spans
        if s.parent_span_id == failed_root.span_id and s.kind == Span.SPAN_KIND_CLIENT
    ]
    assert failed_attempt.attributes["error.type"] == "upstream_error"

    # the export carried its header, read from the environment by reference
    assert all(h.get("x-export-token") == EXPORT_TOKEN for h in receiver.headers)
    everything = b"".join(receiver.raw)
    for canary in (PROVIDER_KEY, key, PROMPT, EXPORT_TOKEN, FakeUpstream.REPLY_TEXT):
        assert canary.encode() not in everything
    assert EXPORT_TOKEN not in gateway.stderr()


def test_no_span_is_exported_when_tracing_is_off(
    upstream: FakeUpstream, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    text = config(upstream, f"tracing: {{endpoint: {receiver.url}/v1/traces}}\n")
    gateway = GatewayProcess(tmp_path, text, env={"OBSERVED_PROVIDER_KEY": PROVIDER_KEY})
    gateway.start()
    try:
        key = gateway.create_key(["gpt"])["key"]
        traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
        assert chat(gateway, key, headers={"traceparent": traceparent}).status_code == 200
    finally:
        gateway.stop()
    assert receiver.raw == []
    assert "traceparent" not in upstream.requests[-1].headers


def test_a_tracing_header_that_is_a_literal_is_refused_at_start(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    text = config(upstream, "tracing:\n  enabled: true\n  headers: {authorization: Bearer xyz}\n")
    gateway = GatewayProcess(tmp_path, text, env={"OBSERVED_PROVIDER_KEY": PROVIDER_KEY})
    gateway.start(wait=False)
    assert gateway.wait_exit() != 0
    assert "tracing.headers" in gateway.stderr() and "xyz" not in gateway.stderr()


def test_content_is_on_spans_only_for_a_team_that_asked_and_then_redacted(
    upstream: FakeUpstream, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    gateway = traced(upstream, receiver, tmp_path)
    try:
        teams = {
            name: gateway.admin("POST", "/admin/teams", json={"name": name, "metadata": meta})
            for name, meta in (("open", {"trace_content": True}), ("closed", {}))
        }
        assert all(t.status_code == 201 for t in teams.values())
        shaped = "sk-proj-" + secrets.token_hex(16)  # a key shape the redactor knows
        words = f"{PROMPT} my key is {shaped} and {PROVIDER_KEY}"
        for name, team in teams.items():
            key = gateway.create_key(["gpt"], team_id=team.json()["id"])["key"]
            headers = {"x-request-id": f"content-{name}"}
            sent = chat(
                gateway, key, headers=headers, messages=[{"role": "user", "content": words}]
            )
            assert sent.status_code == 200
    finally:
        gateway.stop()
    spans = {s.attributes.get("sealgate.request_id"): s for s in receiver.named("chat gpt")}
    opened, closed = spans["content-open"].attributes, spans["content-closed"].attributes
    assert PROMPT in opened["gen_ai.input.messages"]
    assert "[REDACTED]" in opened["gen_ai.input.messages"]
    assert FakeUpstream.REPLY_TEXT in opened["gen_ai.output.messages"]
    assert "gen_ai.input.messages" not in closed and "gen_ai.output.messages" not in closed
    everything = b"".join(receiver.raw)
    assert shaped.encode() not in everything and PROVIDER_KEY.encode() not in everything
    assert everything.count(PROMPT.encode()) == 1  # the open team's span, nowhere else


def test_a_streamed_answer_s_span_carries_its_finish_reason(
    upstream: FakeUpstream, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    gateway = traced(upstream, receiver, tmp_path)
    try:
        key = gateway.create_key(["gpt"])["key"]
        streamed = chat(gateway, key, headers={"x-request-id": "streamed-1"}, stream=True)
        assert streamed.status_code == 200
        assert '"finish_reason":"stop"' in streamed.text.replace(" ", "")
    finally:
        gateway.stop()
    (root,) = [
        s for s in receiver.named("chat gpt") if s.attributes["sealgate.request_id"] == "streamed-1"
    ]
    assert root.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert "gen_ai.response.time_to_first_chunk" in root.attributes
    assert FakeUpstream.REPLY_TEXT.encode() not in b"".join(receiver.raw)
