"""The span exporter in process (issue 17): what it sends under a sustained rate of spans, against
a real OTLP/HTTP receiver that decodes every export."""

from __future__ import annotations

import asyncio
import time

from gateway.tracing import SERVER, Span
from gateway.tracing.export import DROPPED, SpanExporter
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
