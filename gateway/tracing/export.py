"""The span exporter: OTLP/HTTP protobuf, in batches.

    hot path: a span ends ──> ``add``: appended to a bounded queue (a deque; no lock, no I/O)
    event loop, as soon as ENCODE_CHUNK spans wait (and ``delay`` seconds after the first span
        queued, for the rest): those spans encoded (opentelemetry-proto), a chunk at a time with
        the loop's other work between
    sender thread, woken ``delay`` seconds after the first span queued or once WAKE_BODIES
        chunks wait: every encoded batch waiting, in one POST <endpoint>
        a 2xx answer: done; 429, 502, 503, 504 or no connection: again after 0.5 s, 1 s, 2 s, ...
        until ``timeout_seconds`` have passed, then the batch is dropped and counted

Spans are diagnostics, not records: a full queue drops the new span rather than grow, and both
kinds of loss are counted (``sealgate_trace_spans_dropped_total{reason}``) and logged once per
streak, never silently. ``stop`` sends what is queued before it returns. The connection goes
only to the endpoint's host and port, at an address the egress guard passed (a name resolving to
a private or link-local address is refused unless ``tracing.allow_private_network``); redirects
are not followed (``http.client`` follows none).
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from gateway.metrics import METRICS

if TYPE_CHECKING:
    from gateway.tracing import Span

log = logging.getLogger("sealgate.tracing")

MAX_QUEUE = 2048  # spans waiting to be encoded
ENCODE_CHUNK = 64  # spans encoded at a time on the event loop (about 1 ms), then other work
MAX_BODIES = 64  # encoded batches waiting for the sender
WAKE_BODIES = 16  # encoded batches that wake the sender before the delay is up
DELAY_SECONDS = 1.0
RETRY_STATUSES = frozenset({429, 502, 503, 504})
FIRST_RETRY_SECONDS = 0.5
SCOPE = InstrumentationScope(name="sealgate")

EXPORTED = METRICS.counter("sealgate_trace_spans_exported_total", "spans the collector accepted")
DROPPED = METRICS.counter(
    "sealgate_trace_spans_dropped_total",
    "spans not exported, by reason (queue_full: more than the queue holds; export_failed: the "
    "collector did not take them within tracing.timeout_seconds)",
)


def set_value(target: AnyValue, value: Any) -> None:
    """An attribute value in OTLP's form (bool before int: a bool is an int in Python)."""
    kind = type(value)
    if kind is str:  # the common types by identity first: no isinstance walk for them
        target.string_value = value
    elif kind is int:
        target.int_value = value
    elif kind is float:
        target.double_value = value
    else:
        _set_other(target, value)


def _set_other(target: AnyValue, value: Any) -> None:
    if isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, list | tuple):
        values = target.array_value.values
        for item in value:
            set_value(values.add(), item)
    elif isinstance(value, Mapping):
        add_attributes(target.kvlist_value.values, value)
    elif value is not None:
        target.string_value = str(value)
    # None: an empty AnyValue, OTLP's "no value"


def add_attributes(target: Any, attributes: Mapping[str, Any]) -> None:
    """``attributes`` appended to a repeated ``KeyValue`` field. Filled in place with ``add``:
    about three times faster with protobuf's upb backend than building each message with
    keyword arguments and copying it in."""
    for name, value in attributes.items():
        pair = target.add()
        pair.key = name
        kind = type(value)
        if kind is str:  # set_value's common cases, inline: once per attribute of every span
            pair.value.string_value = value
        elif kind is int:
            pair.value.int_value = value
        elif kind is float:
            pair.value.double_value = value
        else:
            _set_other(pair.value, value)


def resource(service_name: str) -> Resource:
    service = Resource()
    add_attributes(
        service.attributes, {"service.name": service_name, "telemetry.sdk.language": "python"}
    )
    return service


def encode(spans: Iterable[Span], service: Resource) -> bytes:
    """One ``ExportTraceServiceRequest`` holding these spans."""
    request = ExportTraceServiceRequest()
    batch = request.resource_spans.add()
    batch.resource.CopyFrom(service)
    scoped = batch.scope_spans.add()
    scoped.scope.CopyFrom(SCOPE)
    messages = scoped.spans
    for span in spans:
        message = messages.add()
        message.trace_id = span.trace_id.to_bytes(16, "big")
        message.span_id = span.span_id.to_bytes(8, "big")
        if span.parent_id:
            message.parent_span_id = span.parent_id.to_bytes(8, "big")
        if span.trace_state:
            message.trace_state = span.trace_state
        message.name = span.name
        message.kind = span.kind  # the enum's int values
        message.start_time_unix_nano = span.start
        message.end_time_unix_nano = span.end
        add_attributes(message.attributes, span.attributes)
        if span.error:
            message.status.code = Status.STATUS_CODE_ERROR
    return bytes(request.SerializeToString())


class ExportFailed(Exception):
    """The collector did not take a batch (the reason: a status or an error class)."""


Guard = Callable[[str, int], tuple[str, int]]  # (host, port) -> the address checked to connect to


class _Guarded(http.client.HTTPConnection):
    """A connection made to the address the egress guard checked (``gateway.providers.egress``
    gives the guard: this ground layer imports nothing above it). The TLS subclass below wraps
    this socket with the URL's own host name for SNI and the certificate check."""

    guard: Guard | None = None

    def connect(self) -> None:
        if self.guard is None:
            super().connect()
            return
        self.sock = socket.create_connection(self.guard(self.host, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _GuardedTLS(http.client.HTTPSConnection, _Guarded):
    pass


class Poster:
    """POSTs bodies to one URL over one kept-alive connection, made again after a failure."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        timeout_seconds: float,
        guard: Guard | None = None,
    ) -> None:
        parts = urlsplit(url)
        self._guard = guard
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {
            "Content-Type": "application/x-protobuf",
            "User-Agent": "sealgate",
            **headers,
        }
        self._timeout = timeout_seconds
        self._connection: http.client.HTTPConnection | None = None

    def post(self, body: bytes, timeout: float) -> int:
        """The answer's status; raises OSError (http.client's errors among them) when there
        was no answer."""
        connection = self._connection
        if connection is None:
            if self._https:
                connection = _GuardedTLS(
                    self._host, self._port, timeout=timeout, context=ssl.create_default_context()
                )
            else:
                connection = _Guarded(self._host, self._port, timeout=timeout)
            connection.guard = self._guard
            self._connection = connection
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        try:
            connection.request("POST", self._path, body, self._headers)
            answer = connection.getresponse()
            answer.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise OSError(type(exc).__name__) from None
        if answer.will_close:
            self.close()
        return answer.status

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class SpanExporter:
    def __init__(
        self,
        endpoint: str,
        headers: Mapping[str, str],
        service_name: str,
        timeout_seconds: float,
        max_queue: int = MAX_QUEUE,
        delay_seconds: float = DELAY_SECONDS,
        guard: Guard | None = None,
    ) -> None:
        self._queue: deque[Span] = deque()
        self._max_queue = max_queue
        self._delay = delay_seconds
        self._timeout = timeout_seconds
        self._resource = resource(service_name)
        self._poster = Poster(endpoint, headers, timeout_seconds, guard)
        self._scheduled = False  # a flush is due (``delay`` after the first span queued)
        self._chunking = False  # a full chunk's encoding is due
        # Encoded batches for the sender thread: (body, spans in it).
        self._bodies: deque[tuple[bytes, int]] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sealgate-span-export", daemon=True)
        self._failing = False
        self._full = False
        for reason in ("queue_full", "export_failed"):
            DROPPED[(("reason", reason),)] += 0
        EXPORTED[()] += 0

    def add(self, span: Span) -> None:
        """Queue a finished span (on the event loop: no lock, no I/O); the first one after a
        flush schedules the next flush on the same loop, ``delay`` seconds on."""
        queue = self._queue
        if len(queue) >= self._max_queue:
            DROPPED[(("reason", "queue_full"),)] += 1
            if not self._full:
                self._full = True
                log.warning(
                    "trace export queue full: spans dropped", extra={"sg_limit": self._max_queue}
                )
            return
        queue.append(span)
        if self._scheduled and (len(queue) < ENCODE_CHUNK or self._chunking):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a test, a shutdown): ``stop`` sends it
        if not self._scheduled:
            self._scheduled = True
            loop.call_later(self._delay, self._flush, loop)
        if len(queue) >= ENCODE_CHUNK and not self._chunking:
            self._chunking = True
            loop.call_soon(self._encode_chunks, loop)

    def _encode_chunks(self, loop: asyncio.AbstractEventLoop) -> None:
        """A full chunk encoded as soon as one waits, not when the delay is up: a span's
        objects then live for milliseconds, not a second (the garbage collector's younger
        generations no longer carry thousands of them from one collection to the next), and
        a rate above ``max_queue`` spans per delay no longer overflows the queue."""
        queue = self._queue
        if len(queue) >= ENCODE_CHUNK:
            self._hand_over([queue.popleft() for _ in range(ENCODE_CHUNK)], wake=False)
        if len(queue) >= ENCODE_CHUNK:
            loop.call_soon(self._encode_chunks, loop)
        else:
            self._chunking = False

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """The delay is up: what waits encoded, one chunk at a time, on the loop, with the
        loop's other work before the next chunk; then the sender woken. Encoding on the loop
        and not in the sender thread matters: a thread that computes holds the interpreter lock
        whenever the event loop gives it up for a system call, and on a busy machine the
        operating system can pause that thread while it holds the lock, so the loop waits on
        it; the sender thread only waits on its socket."""
        queue = self._queue
        spans = [queue.popleft() for _ in range(min(ENCODE_CHUNK, len(queue)))]
        self._full = False
        if spans:
            self._hand_over(spans, wake=False)
        if queue:
            loop.call_soon(self._flush, loop)
        else:
            self._scheduled = False
            self._wake.set()

    def _hand_over(self, spans: list[Span], wake: bool = True) -> None:
        try:
            body = encode(spans, self._resource)
        except Exception as exc:  # noqa: BLE001 - one bad span must not stop the others
            DROPPED[(("reason", "export_failed"),)] += len(spans)
            log.warning(
                "trace export failed: spans dropped",
                extra={"sg_error": type(exc).__name__, "sg_spans": len(spans)},
            )
            return
        if len(self._bodies) >= MAX_BODIES:
            DROPPED[(("reason", "queue_full"),)] += len(spans)
            return
        self._bodies.append((body, len(spans)))
        if wake or len(self._bodies) >= WAKE_BODIES:
            self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Encode and send what is queued (within the timeout), then end the thread. Called
        when the event loop has ended."""
        queue = self._queue
        while queue:
            self._hand_over([queue.popleft() for _ in range(min(ENCODE_CHUNK, len(queue)))])
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(self._timeout * 2 + 1)
        self._poster.close()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self._send_waiting()
            if self._stopping:
                self._send_waiting()
                return

    def _send_waiting(self) -> None:
        bodies = self._bodies
        while bodies:
            # Serialized messages of one type concatenate into one message (protobuf merges
            # repeated fields), so everything waiting goes in one POST.
            taken = [bodies.popleft() for _ in range(len(bodies))]
            count = sum(spans for _, spans in taken)
            try:
                self._send(b"".join(body for body, _ in taken))
            except ExportFailed as exc:
                DROPPED[(("reason", "export_failed"),)] += count
                if not self._failing:
                    self._failing = True
                    log.warning(
                        "trace export failed: spans dropped",
                        extra={"sg_error": str(exc), "sg_spans": count},
                    )
                continue
            EXPORTED[()] += count
            if self._failing:
                self._failing = False
                log.warning("trace export delivering again")

    def _send(self, body: bytes) -> None:
        deadline = time.monotonic() + self._timeout
        wait = FIRST_RETRY_SECONDS
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ExportFailed("timeout")
            try:
                status = self._poster.post(body, left)
            except OSError as exc:
                reason = str(exc) or type(exc).__name__
            else:
                if 200 <= status < 300:
                    return
                reason = f"status {status}"
                if status not in RETRY_STATUSES:
                    raise ExportFailed(reason)
            if deadline - time.monotonic() <= wait:
                raise ExportFailed(reason)
            time.sleep(wait)
            wait *= 2
