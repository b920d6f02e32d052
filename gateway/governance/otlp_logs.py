"""The OTLP logs sink: each batch of events POSTed as one OTLP/HTTP ``ExportLogsServiceRequest``
(protobuf, ``opentelemetry-proto``), so an OpenTelemetry collector or any OTLP backend takes
spend records, access events and budget alerts as log records (``sinks.py`` runs the loop:
claim, send, ack or retry with backoff).

One log record per event:

    event_name        sealgate.<type>              (sealgate.spend, sealgate.access, ...)
    time_unix_nano    the event's own time (its ``at``), observed_time_unix_nano: when sent
    severity          INFO; WARN for a budget alert and an access event of status 4xx;
                      ERROR for an access event of status 5xx (or none: the client went away)
    body              the event's data as a map: the same fields as the webhook's ``data``
    attributes        sealgate.event.id, sealgate.event.type

The export's headers (an authorization header for a hosted backend) are credential references
fetched through the secret broker, never values in the config. A 2xx answer acknowledges the
batch; a ``partial_success`` that rejected records is logged (by count), not resent, since the
backend has said it will not take them.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber

from gateway.config import OtlpLogsSink as OtlpLogsSettings
from gateway.governance.sink_queue import Event, SinkQueue
from gateway.governance.sinks import QueueSink
from gateway.secrets.broker import SecretBroker
from gateway.tracing.export import add_attributes, resource, set_value

log = logging.getLogger("sealgate.sinks")

CONTENT_TYPE = "application/x-protobuf"
SCOPE_NAME = "sealgate"


def severity(event: Event) -> tuple[int, str]:
    if event.type == "budget_alert":
        return SeverityNumber.SEVERITY_NUMBER_WARN, "WARN"
    if event.type == "access":
        status = event.data.get("status")
        if not isinstance(status, int) or status >= 500 or status == 499:
            return SeverityNumber.SEVERITY_NUMBER_ERROR, "ERROR"
        if status >= 400:
            return SeverityNumber.SEVERITY_NUMBER_WARN, "WARN"
    return SeverityNumber.SEVERITY_NUMBER_INFO, "INFO"


def unix_nanos(at: Any) -> int:
    """An event's ``at`` (ISO 8601, as spend records and access events carry it) in unix
    nanoseconds; 0 (OTLP's "unknown") when it has none."""
    if not isinstance(at, str):
        return 0
    try:
        return int(datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError:
        return 0


def encode(events: list[Event], service_name: str, now_ns: int) -> bytes:
    """One ``ExportLogsServiceRequest`` holding one log record per event."""
    request = ExportLogsServiceRequest()
    batch = request.resource_logs.add()
    batch.resource.CopyFrom(resource(service_name))
    scoped = batch.scope_logs.add()
    scoped.scope.name = SCOPE_NAME
    records = scoped.log_records
    for event in events:
        record = records.add()
        record.event_name = f"sealgate.{event.type}"
        record.time_unix_nano = unix_nanos(event.data.get("at"))
        record.observed_time_unix_nano = now_ns
        number, text = severity(event)
        record.severity_number = number  # the enum's int values
        record.severity_text = text
        set_value(record.body, dict(event.data))
        add_attributes(
            record.attributes, {"sealgate.event.id": event.id, "sealgate.event.type": event.type}
        )
    return bytes(request.SerializeToString())


class OtlpLogsSink(QueueSink):
    def __init__(self, settings: OtlpLogsSettings, queue: SinkQueue, broker: SecretBroker) -> None:
        super().__init__(settings, queue)
        self._otlp = settings
        self._broker = broker

    async def send(self, events: list[Event]) -> None:
        settings = self._otlp
        body = encode(events, settings.service_name, time.time_ns())
        headers = {"content-type": CONTENT_TYPE}
        for name, ref in settings.header_refs().items():
            headers[name] = (await self._broker.get(ref)).reveal()
        answer = await self.request("POST", settings.endpoint, body, headers)
        rejected = partial_rejections(answer)
        if rejected:
            log.warning(
                "OTLP logs receiver rejected some records of a batch (not resent)",
                extra={"sg_sink": self.name, "sg_rejected": rejected},
            )


def partial_rejections(answer: bytes) -> int:
    """How many records an ``ExportLogsServiceResponse`` says were rejected (0 for an empty
    answer, or one that does not decode: the 2xx status is the acknowledgement)."""
    response = ExportLogsServiceResponse()
    try:
        response.ParseFromString(answer)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError; the status already acknowledged
        return 0
    return int(response.partial_success.rejected_log_records)
