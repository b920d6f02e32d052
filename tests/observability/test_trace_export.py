"""The span exporter in process (issue 17): what it sends under a sustained rate of spans, to a
real OTLP/HTTP receiver that decodes every export; its encoding, against the protobuf messages'."""

from __future__ import annotations

import asyncio
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gateway.tracing import CLIENT, SERVER, Span
from gateway.tracing.export import DROPPED, SpanExporter, encode, encode_with_messages, resource
from tests.support.otlp_receiver import OtlpReceiver

QUEUE_FULL = (("reason", "queue_full"),)


def a_span(number: int) -> Span:
    span = Span("chat bench", SERVER, number + 1, 0, True, "", {"sealgate.n": number})
    span.end = time.time_ns()
    return span


def test_more_spans_within_one_delay_than_the_queue_holds_are_all_exported() -> None:
    receiver = OtlpReceiver().start()
    exporter = SpanExporter(
        f"{receiver.url}/v1/traces", {}, "sealgate-under-test", 5.0, max_queue=256,
        delay_seconds=60.0,
    )  # fmt: skip
    exporter.start()
    dropped_before = DROPPED[QUEUE_FULL]

    async def serve() -> None:
        # 2,000 spans within one delay, a few per turn of the loop as requests end
        for number in range(2000):
            exporter.add(a_span(number))
            if number % 4 == 3:
                await asyncio.sleep(0)

    try:
        asyncio.run(serve())
        exporter.stop()
    finally:
        receiver.stop()
    assert DROPPED[QUEUE_FULL] == dropped_before
    numbers = sorted(span.attributes["sealgate.n"] for span in receiver.spans)
    assert numbers == list(range(2000))


def test_spans_are_encoded_to_the_bytes_the_protobuf_messages_make() -> None:
    spans = []
    for number in range(6):
        span = a_span(number)
        span.attributes.update(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.usage.input_tokens": number * 1000,
                "sealgate.cost_usd": number / 3,
                "gen_ai.response.finish_reasons": ["stop", "length"],
                "negative": -number - 1,
                "big": 1 << 40,
                "flag": number % 2 == 0,
                "unicode": "héllo ✓" * number,
                "none": None,
                "mapping": {"a": 1, "b": "two"},
                "long": "x" * 300,
            }
        )
        spans.append(span)
    spans[1].parent_id = 12345
    spans[2].trace_state = "vendor=value"
    spans[3].error = True
    spans[4].kind = CLIENT
    service = resource("sealgate-under-test")
    for _ in range(2):  # the second time from the remembered attributes
        assert encode(spans, service) == encode_with_messages(spans, service)
    request = ExportTraceServiceRequest()
    request.ParseFromString(encode(spans, service))
    (decoded,) = request.resource_spans[0].scope_spans
    assert [span.attributes[2].value.int_value for span in decoded.spans] == [
        n * 1000 for n in range(6)
    ]
