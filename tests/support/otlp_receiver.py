"""A real OTLP/HTTP receiver on loopback: it takes ``POST /v1/traces`` (and ``/v1/logs``) as the
OpenTelemetry collector does, decodes each body with the OpenTelemetry protobuf definitions
(``opentelemetry-proto``) and keeps what it decoded, with the headers each export came with. It can
refuse (answer 503, keeping nothing) or go away and come back on the same port (``port``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span


@dataclass
class ReceivedSpan:
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    status_code: int
    service: str


@dataclass
class ReceivedLog:
    event_name: str
    severity: str
    time_unix_nano: int
    body: Any
    attributes: dict[str, Any]
    service: str
    scope: str


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


@dataclass
class OtlpReceiver:
    spans: list[ReceivedSpan] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)  # every body as it came (for the canary)
    headers: list[dict[str, str]] = field(default_factory=list)
    logs: list[logs_service_pb2.ExportLogsServiceRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0  # 0: any free port (kept after the first start, for a restart)
    refusing: bool = False  # answer 503 and keep nothing
    refused: int = 0

    def start(self) -> OtlpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.refusing:
                    with receiver.lock:
                        receiver.refused += 1
                    self.send_error(503)
                    return
                with receiver.lock:
                    receiver.raw.append(body)
                    receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                    if self.path == "/v1/traces":
                        request = trace_service_pb2.ExportTraceServiceRequest()
                        request.ParseFromString(body)
                        receiver._keep(request)
                        answer = trace_service_pb2.ExportTraceServiceResponse()
                    elif self.path == "/v1/logs":
                        logs = logs_service_pb2.ExportLogsServiceRequest()
                        logs.ParseFromString(body)
                        receiver.logs.append(logs)
                        answer = logs_service_pb2.ExportLogsServiceResponse()  # type: ignore[assignment]
                    else:
                        self.send_error(404)
                        return
                payload = answer.SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _keep(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        for resource in request.resource_spans:
            resource_attributes = {a.key: value_of(a.value) for a in resource.resource.attributes}
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.spans.append(_span(span, str(resource_attributes.get("service.name"))))

    def log_records(self) -> list[ReceivedLog]:
        """Every log record received, decoded, in the order they came."""
        with self.lock:
            exports = list(self.logs)
        found = []
        for export in exports:
            for resource in export.resource_logs:
                service = {a.key: value_of(a.value) for a in resource.resource.attributes}
                for scope in resource.scope_logs:
                    for record in scope.log_records:
                        found.append(
                            ReceivedLog(
                                event_name=record.event_name,
                                severity=record.severity_text,
                                time_unix_nano=record.time_unix_nano,
                                body=value_of(record.body),
                                attributes={a.key: value_of(a.value) for a in record.attributes},
                                service=str(service.get("service.name")),
                                scope=scope.scope.name,
                            )
                        )
        return found

    def named(self, prefix: str) -> list[ReceivedSpan]:
        with self.lock:
            return [s for s in self.spans if s.name.startswith(prefix)]


def _span(span: Span, service: str) -> ReceivedSpan:
    return ReceivedSpan(
        name=span.name,
        kind=span.kind,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        attributes={a.key: value_of(a.value) for a in span.attributes},
        status_code=span.status.code,
        service=service,
    )
