"""Traces, exported over OTLP/HTTP (protobuf): off unless ``tracing.enabled``.

One SERVER span per inference request, named and attributed after the GenAI semantic
conventions (``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
``gen_ai.response.model``, ``gen_ai.response.finish_reasons``, ``gen_ai.usage.*``), with the
limit check's duration (``sealgate.limits.duration``), a CLIENT child for each upstream attempt
and, under an attempt, one for a secret fetch from its backend. An incoming W3C ``traceparent``
makes the request's span its child and its sampling decision is followed; with
``propagate_upstream`` the attempt's own context goes to the deployment.

How (issue 17's throughput bound): the OpenTelemetry SDK cost about 50 µs to make and 45 µs to
encode each span on the serving thread. Here a span on the hot path is one small object (ids,
name, kind, two clock readings, a dict of attributes); when it ends it is appended to a bounded
queue. As each 64 spans wait (and once a second for the rest) the event loop encodes them into
OTLP protobuf (the wire format of ``opentelemetry-proto``'s definitions), and a sender thread
that does nothing but I/O POSTs it, with retries (``export.SpanExporter``: why not encode in a
thread).

What never goes into a span: a key, a token, a header value, an exception message (errors are
recorded by their code, ``error.type``). Attribute values are the operator's names (models,
deployments, providers), ids the gateway made, and numbers. Prompts and answers only for a team
whose operator turned it on (``record_input``, ``record_output``), and then through the log
redactor (every secret the process holds, every credential shape) and capped in size.

When tracing is off every helper here returns at its first line, so the hot path pays one
attribute read per call site.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any

from gateway.logs import REDACTOR
from gateway.values import Stream, Usage, parsed_chunks

if TYPE_CHECKING:  # the exporter (and opentelemetry-proto) is imported by ``start`` only
    from gateway.tracing.export import Guard, SpanExporter

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
MAX_CONTENT_CHARS = 16384  # of one content attribute, after redaction
MAX_TRACESTATE = 512  # W3C: at most 32 members; longer headers are dropped, not cut
Attributes = Mapping[str, str | int | float | bool | list[str]]

# The span kinds of the OTLP protobuf (opentelemetry.proto.trace.v1.Span.SpanKind).
INTERNAL, SERVER, CLIENT = 1, 2, 3

TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
TRACESTATE = re.compile(rb"[\x20-\x7e]*")
FINISH_REASON = re.compile(rb'"finish_reason"\s*:\s*"([^"\\]{1,64})"')
_INVALID_TRACE = b"0" * 32
_INVALID_SPAN = b"0" * 16
# Trace and span ids must be unique, not secret (the OpenTelemetry SDK uses random too).
_RANDOM = random.Random()  # noqa: S311


class Span:
    """One span while it runs and until the exporter has sent it. ``sampled`` False: it is
    only a context (its ids go to children and upstream), never exported."""

    __slots__ = (
        "attributes",
        "end",
        "error",
        "kind",
        "name",
        "parent_id",
        "sampled",
        "span_id",
        "start",
        "trace_id",
        "trace_state",
    )

    def __init__(
        self,
        name: str,
        kind: int,
        trace_id: int,
        parent_id: int,
        sampled: bool,
        trace_state: str,
        attributes: dict[str, Any],
    ) -> None:
        self.name = name
        self.kind = kind
        self.trace_id = trace_id
        self.span_id = _RANDOM.getrandbits(64) or 1
        self.parent_id = parent_id
        self.sampled = sampled
        self.trace_state = trace_state
        self.attributes = attributes
        self.error = False
        self.start = time.time_ns()
        self.end = 0

    def set_attribute(self, name: str, value: Any) -> None:
        self.attributes[name] = value

    def traceparent(self) -> str:
        flags = "01" if self.sampled else "00"
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{flags}"


class _State:
    exporter: SpanExporter | None = None
    propagate = False
    bound = 1 << 64  # a trace is sampled when the low 64 bits of its id are below this


STATE = _State()
_CURRENT: ContextVar[Span | None] = ContextVar("sealgate_span", default=None)
_REQUEST: ContextVar[Span | None] = ContextVar("sealgate_request_span", default=None)


def enabled() -> bool:
    return STATE.exporter is not None


def start(
    endpoint: str,
    headers: Mapping[str, str],
    sample_ratio: float,
    propagate_upstream: bool,
    service_name: str,
    timeout_seconds: float,
    guard: Guard | None = None,
) -> None:
    """Export spans from now on (in batches, from the exporter's own thread), connecting where
    ``guard`` (the egress check) says."""
    from gateway.tracing.export import SpanExporter

    exporter = SpanExporter(endpoint, dict(headers), service_name, timeout_seconds, guard=guard)
    exporter.start()
    STATE.bound = round(sample_ratio * (1 << 64))
    STATE.propagate = propagate_upstream
    STATE.exporter = exporter


def stop() -> None:
    """Export what is queued and stop."""
    exporter, STATE.exporter = STATE.exporter, None
    if exporter is not None:
        exporter.stop()


class _Scope:
    """A span as the current one for a ``with`` block (a class: cheaper than a generator)."""

    __slots__ = ("span", "token")

    def __init__(self, span: Span | None) -> None:
        self.span = span

    def __enter__(self) -> Span | None:
        if self.span is not None:
            self.token = _CURRENT.set(self.span)
        return self.span

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        current = self.span
        if current is None:
            return
        _CURRENT.reset(self.token)
        _end(current)


def _end(current: Span) -> None:
    current.end = time.time_ns()
    exporter = STATE.exporter
    if current.sampled and exporter is not None:
        exporter.add(current)


_NO_SPAN = _Scope(None)


def span(name: str, kind: int = INTERNAL, attributes: Attributes | None = None) -> _Scope:
    """A child of the current span, current inside the ``with`` (None when tracing is off or
    there is no request span to be the child of)."""
    if STATE.exporter is None:
        return _NO_SPAN
    parent = _CURRENT.get()
    if parent is None:
        return _NO_SPAN  # work outside a request (a probe, a refresh) is not traced
    return _Scope(
        Span(
            name,
            kind,
            parent.trace_id,
            parent.span_id,
            parent.sampled,
            parent.trace_state,
            dict(attributes) if attributes else {},
        )
    )


class _Timed:
    """A step's duration in seconds as an attribute of the request's span: for a step whose
    own span would carry nothing but its times (the limit check), one attribute costs far less
    than a span to make, encode and send."""

    __slots__ = ("began", "name", "span")

    def __init__(self, name: str, current: Span) -> None:
        self.name = name
        self.span = current

    def __enter__(self) -> None:
        self.began = time.perf_counter()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.span.attributes[self.name] = time.perf_counter() - self.began


def timed(name: str) -> _Timed | _Scope:
    """``with timed("sealgate.limits.duration"):`` puts the block's duration on the request's
    span (nothing when tracing is off)."""
    if STATE.exporter is None or (current := _REQUEST.get()) is None:
        return _NO_SPAN
    return _Timed(name, current)


class _RequestScope(_Scope):
    __slots__ = ("request_token",)

    def __enter__(self) -> Span | None:
        if self.span is not None:
            self.request_token = _REQUEST.set(self.span)
        return super().__enter__()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.span is not None:
            _REQUEST.reset(self.request_token)
        super().__exit__(kind, value, traceback)


def request_span(path: str, headers: Iterable[tuple[bytes, bytes]]) -> _Scope:
    """The span of one inference request, a child of the client's ``traceparent`` if it sent
    a valid one. Named ``{operation}`` until ``finish_request`` knows the model."""
    if STATE.exporter is None:
        return _NO_SPAN
    parent: tuple[int, int, bool] | None = None
    state = b""
    for name, value in headers:
        if name == b"traceparent" and parent is None:
            parent = _parent_of(value.strip())
        elif name == b"tracestate":
            state = value.strip()
    operation = OPERATIONS.get(path, "chat")
    attributes: dict[str, Any] = {"gen_ai.operation.name": operation, "url.path": path}
    if parent is None:
        trace_id = _RANDOM.getrandbits(128) or 1
        sampled = (trace_id & 0xFFFFFFFFFFFFFFFF) < STATE.bound
        created = Span(operation, SERVER, trace_id, 0, sampled, "", attributes)
    else:
        keep = len(state) <= MAX_TRACESTATE and TRACESTATE.fullmatch(state) is not None
        trace_state = state.decode("ascii") if keep else ""
        created = Span(operation, SERVER, parent[0], parent[1], parent[2], trace_state, attributes)
    return _RequestScope(created)


def _parent_of(value: bytes) -> tuple[int, int, bool] | None:
    """A W3C traceparent's trace id, parent id and sampled flag, or None when it is not valid
    (then the request starts a trace of its own)."""
    match = TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == b"ff" or (version == b"00" and rest is not None):
        return None
    if trace_id == _INVALID_TRACE or parent_id == _INVALID_SPAN:
        return None
    return int(trace_id, 16), int(parent_id, 16), bool(int(flags, 16) & 1)


def finish_request(current: Span, path: str, status: int, facts: Mapping[str, Any]) -> None:
    """The request's outcome on its span: the HTTP status, the model, usage, who called
    (``status`` 0: the client went away before an answer)."""
    model = facts.get("gen_ai.request.model")
    if model:
        current.name = f"{OPERATIONS.get(path, 'chat')} {model}"
    attributes = current.attributes
    for name, value in facts.items():
        if value is not None:
            attributes[name] = value
    attributes["http.response.status_code"] = status or 499
    if status >= 500 or status == 0:
        current.error = True
        attributes["error.type"] = str(facts.get("sealgate.outcome") or status)


def attempt_span(operation: str, provider: str, model: str, deployment: str) -> _Scope:
    """A CLIENT span for one upstream attempt (a context manager)."""
    if STATE.exporter is None or (parent := _CURRENT.get()) is None:
        return _NO_SPAN
    attributes = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": PROVIDER_NAMES.get(provider, provider),
        "gen_ai.request.model": model,
        "sealgate.deployment": deployment,
    }  # made here for this span alone: ``span`` would copy it
    return _Scope(
        Span(
            f"{operation} {model}",
            CLIENT,
            parent.trace_id,
            parent.span_id,
            parent.sampled,
            parent.trace_state,
            attributes,
        )
    )


def failed(current: Span | None, code: str) -> None:
    if current is not None:
        current.error = True
        current.attributes["error.type"] = code


def record_reply(body: bytes, parsed: Any = None) -> None:
    """A complete OpenAI-shaped answer's response model, id and finish reasons, on the
    request's span (nothing of its content). ``parsed``: ``body`` as the adapter already parsed
    it (``Reply.parsed``), read instead of parsing it again."""
    if STATE.exporter is None:
        return
    current = _REQUEST.get()
    if current is None:
        return
    reply = parsed
    if reply is None:
        try:
            reply = json.loads(body)
        except ValueError:
            return
    if not isinstance(reply, dict):
        return
    attributes = current.attributes
    if isinstance(reply.get("model"), str):
        attributes["gen_ai.response.model"] = reply["model"][:200]
    if isinstance(reply.get("id"), str):
        attributes["gen_ai.response.id"] = reply["id"][:200]
    choices = reply.get("choices")
    if isinstance(choices, list):
        reasons = [
            c["finish_reason"][:64]
            for c in choices
            if isinstance(c, dict) and isinstance(c.get("finish_reason"), str)
        ]
        if reasons:
            attributes["gen_ai.response.finish_reasons"] = reasons


class FinishReasons:
    """A stream passed through untouched, its events' ``finish_reason`` values put on the
    request's span as ``gen_ai.response.finish_reasons`` as they go by (one per choice that
    finished, in the order they came). The chunks are whole SSE events in OpenAI's shape."""

    def __init__(self, inner: Stream, current: Span) -> None:
        self._inner = inner
        self._span = current
        self._reasons: list[str] = []

    @property
    def usage(self) -> Usage | None:
        return self._inner.usage

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner.chunks():
            if b'"finish_reason"' in chunk:
                found = FINISH_REASON.findall(chunk)
                if found:
                    self._reasons += [reason.decode("utf-8", "replace") for reason in found]
                    self._span.attributes["gen_ai.response.finish_reasons"] = self._reasons
            yield chunk

    def parsed(self) -> AsyncIterator[list[Any]] | None:
        inner = parsed_chunks(self._inner)
        return None if inner is None else self._read(inner)

    async def _read(self, inner: AsyncIterator[list[Any]]) -> AsyncIterator[list[Any]]:
        async for batch in inner:
            for chunk in batch:
                choices = chunk.get("choices") if type(chunk) is dict else None
                for choice in choices if type(choices) is list else ():
                    reason = choice.get("finish_reason") if type(choice) is dict else None
                    if type(reason) is str and 0 < len(reason) <= 64:
                        self._reasons.append(reason)
                        self._span.attributes["gen_ai.response.finish_reasons"] = self._reasons
            yield batch

    async def aclose(self) -> None:
        await self._inner.aclose()


def finish_reasons(stream: Stream) -> Stream:
    """``stream`` with its finish reasons going to the request's span (itself when tracing is
    off, or the request is not sampled)."""
    if STATE.exporter is None:
        return stream
    current = _REQUEST.get()
    if current is None or not current.sampled:
        return stream
    return FinishReasons(stream, current)


def record_input(messages: object) -> None:
    """The request's messages on its span as ``gen_ai.input.messages``, redacted."""
    if STATE.exporter is not None and (current := _REQUEST.get()) is not None:
        current.attributes["gen_ai.input.messages"] = _redacted(messages)


def record_output(body: bytes) -> None:
    """A complete answer's messages as ``gen_ai.output.messages``, redacted."""
    if STATE.exporter is None or (current := _REQUEST.get()) is None:
        return
    try:
        choices = json.loads(body).get("choices")
    except (ValueError, AttributeError):
        return
    if isinstance(choices, list):
        messages = [c.get("message") for c in choices if isinstance(c, dict)]
        current.attributes["gen_ai.output.messages"] = _redacted(messages)


def _redacted(value: object) -> str:
    return REDACTOR.scrub(json.dumps(value, default=str))[:MAX_CONTENT_CHARS]


def outbound() -> dict[str, str]:
    """The W3C trace context headers for an upstream request (empty unless propagating)."""
    if STATE.exporter is None or not STATE.propagate:
        return {}
    current = _CURRENT.get()
    if current is None:
        return {}
    carrier = {"traceparent": current.traceparent()}
    if current.trace_state:
        carrier["tracestate"] = current.trace_state
    return carrier
