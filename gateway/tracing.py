"""OpenTelemetry traces, exported over OTLP/HTTP: off unless ``tracing.enabled``.

One SERVER span per inference request, named and attributed after the GenAI semantic
conventions (``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
``gen_ai.response.model``, ``gen_ai.response.finish_reasons``, ``gen_ai.usage.*``), with a child
for the limit check, a CLIENT child for each upstream attempt and, under an attempt, one for a
secret fetch from its backend. An incoming W3C ``traceparent`` makes the request's span its
child; with ``propagate_upstream`` the attempt's own context goes to the deployment.

What never goes into a span: a key, a token, a header value, an exception message (errors are
recorded by their code, ``error.type``). Attribute values are the operator's names (models,
deployments, providers), ids the gateway made, and numbers. Prompts and answers only for a team
whose operator turned it on (``record_input``, ``record_output``), and then through the log
redactor (every secret the process holds, every credential shape) and capped in size.

When tracing is off every helper here returns at its first line, so the hot path pays one
attribute read per call site (the span helpers hand back one shared no-op context manager), and
the SDK and the OTLP exporter (protobuf, requests) are not imported at all: ``start`` imports
them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.logs import REDACTOR

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

# The provider names of the GenAI conventions' registry, by Sealgate provider.
PROVIDER_NAMES = {
    "openai": "openai",
    "openai_compatible": "openai",
    "azure": "azure.ai.openai",
    "anthropic": "anthropic",
}
OPERATIONS = {
    "/v1/chat/completions": "chat",
    "/v1/messages": "chat",
    "/v1/embeddings": "embeddings",
}
PROPAGATOR = TraceContextTextMapPropagator()
# What every span helper returns while tracing is off: entering it gives None, and one instance
# serves every call (nullcontext keeps no state).
OFF: AbstractContextManager[None] = nullcontext(None)
MAX_CONTENT_CHARS = 16384  # of one content attribute, after redaction
Attributes = Mapping[str, str | int | float | bool | list[str]]


class _State:
    tracer: Tracer | None = None
    provider: TracerProvider | None = None
    propagate = False


STATE = _State()


def enabled() -> bool:
    return STATE.tracer is not None


def start(
    endpoint: str,
    headers: Mapping[str, str],
    sample_ratio: float,
    propagate_upstream: bool,
    service_name: str,
    timeout_seconds: float,
) -> None:
    """Export spans from now on (a batch processor: the export runs in its own thread)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    exporter = OTLPSpanExporter(endpoint=endpoint, headers=dict(headers), timeout=timeout_seconds)
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
        resource=Resource.create({"service.name": service_name}),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    STATE.provider = provider
    STATE.tracer = provider.get_tracer("sealgate")
    STATE.propagate = propagate_upstream


def stop() -> None:
    """Export what is queued and stop."""
    provider, STATE.provider, STATE.tracer = STATE.provider, None, None
    if provider is not None:
        provider.shutdown()


def span(
    name: str, kind: SpanKind = SpanKind.INTERNAL, attributes: Attributes | None = None
) -> AbstractContextManager[Span | None]:
    """A child of the current span (None when tracing is off)."""
    tracer = STATE.tracer
    if tracer is None:
        return OFF
    return _span(tracer, name, kind, attributes)


@contextmanager
def _span(
    tracer: Tracer, name: str, kind: SpanKind, attributes: Attributes | None
) -> Iterator[Span | None]:
    with tracer.start_as_current_span(
        name, kind=kind, attributes=attributes, record_exception=False
    ) as current:
        yield current


def request_span(
    path: str, headers: Iterable[tuple[bytes, bytes]]
) -> AbstractContextManager[Span | None]:
    """The span of one inference request, a child of the client's ``traceparent`` if it sent
    a valid one. Named ``{operation}`` until ``finish_request`` knows the model."""
    tracer = STATE.tracer
    if tracer is None:
        return OFF
    return _request_span(tracer, path, headers)


@contextmanager
def _request_span(
    tracer: Tracer, path: str, headers: Iterable[tuple[bytes, bytes]]
) -> Iterator[Span | None]:
    carrier = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in headers
        if name in (b"traceparent", b"tracestate")
    }
    parent = PROPAGATOR.extract(carrier) if carrier else None
    operation = OPERATIONS.get(path, "chat")
    with tracer.start_as_current_span(
        operation,
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"gen_ai.operation.name": operation, "url.path": path},
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        yield current


def finish_request(current: Span, path: str, status: int, facts: Mapping[str, Any]) -> None:
    """The request's outcome on its span: the HTTP status, the model, usage, who called
    (``status`` 0: the client went away before an answer)."""
    model = facts.get("gen_ai.request.model")
    if model:
        current.update_name(f"{OPERATIONS.get(path, 'chat')} {model}")
    attributes = {name: value for name, value in facts.items() if value is not None}
    attributes["http.response.status_code"] = status or 499
    if status >= 500 or status == 0:
        current.set_status(Status(StatusCode.ERROR))
        attributes["error.type"] = str(facts.get("sealgate.outcome") or status)
    current.set_attributes(attributes)  # one lock and one pass, not one per attribute


def attempt_span(operation: str, provider: str, model: str, deployment: str) -> Any:
    """A CLIENT span for one upstream attempt (a context manager)."""
    if STATE.tracer is None:
        return OFF
    return span(
        f"{operation} {model}",
        SpanKind.CLIENT,
        {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": PROVIDER_NAMES.get(provider, provider),
            "gen_ai.request.model": model,
            "sealgate.deployment": deployment,
        },
    )


def failed(current: Span | None, code: str) -> None:
    if current is not None:
        current.set_status(Status(StatusCode.ERROR))
        current.set_attribute("error.type", code)


def record_reply(body: bytes) -> None:
    """A complete OpenAI-shaped answer's response model, id and finish reasons, on the
    request's span (nothing of its content)."""
    if STATE.tracer is None:
        return
    current = trace.get_current_span()
    try:
        reply = json.loads(body)
    except ValueError:
        return
    if not isinstance(reply, dict):
        return
    if isinstance(reply.get("model"), str):
        current.set_attribute("gen_ai.response.model", reply["model"][:200])
    if isinstance(reply.get("id"), str):
        current.set_attribute("gen_ai.response.id", reply["id"][:200])
    choices = reply.get("choices")
    if isinstance(choices, list):
        reasons = [
            c["finish_reason"][:64]
            for c in choices
            if isinstance(c, dict) and isinstance(c.get("finish_reason"), str)
        ]
        if reasons:
            current.set_attribute("gen_ai.response.finish_reasons", reasons)


def record_input(messages: object) -> None:
    """The request's messages on its span as ``gen_ai.input.messages``, redacted."""
    if STATE.tracer is not None:
        trace.get_current_span().set_attribute("gen_ai.input.messages", _redacted(messages))


def record_output(body: bytes) -> None:
    """A complete answer's messages as ``gen_ai.output.messages``, redacted."""
    if STATE.tracer is None:
        return
    try:
        choices = json.loads(body).get("choices")
    except (ValueError, AttributeError):
        return
    if isinstance(choices, list):
        messages = [c.get("message") for c in choices if isinstance(c, dict)]
        trace.get_current_span().set_attribute("gen_ai.output.messages", _redacted(messages))


def _redacted(value: object) -> str:
    return REDACTOR.scrub(json.dumps(value, default=str))[:MAX_CONTENT_CHARS]


def outbound() -> dict[str, str]:
    """The W3C trace context headers for an upstream request (empty unless propagating)."""
    if STATE.tracer is None or not STATE.propagate:
        return {}
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier)
    return carrier
