"""The redacting filter scrubs live secret values and credential shapes from every log record."""

from __future__ import annotations

import io
import json
import logging
import time

from gateway.logs import (
    MAX_KNOWN,
    MAX_KNOWN_CHARS,
    REDACTED,
    JsonFormatter,
    RedactingFilter,
    Redactor,
    timestamp,
)


def capture(redactor: Redactor) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter(redactor))
    logger = logging.getLogger(f"redaction-test-{id(redactor)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_live_values_are_scrubbed_from_message_args_and_extras() -> None:
    redactor = Redactor()
    redactor.add("plain-looking-secret-value")
    logger, stream = capture(redactor)
    logger.info(
        "got %s", "plain-looking-secret-value", extra={"sg_detail": "x plain-looking-secret-value"}
    )
    line = json.loads(stream.getvalue())
    assert "plain-looking-secret-value" not in stream.getvalue()
    assert line["msg"] == f"got {REDACTED}" and line["detail"] == f"x {REDACTED}"


def test_credential_shapes_are_scrubbed_even_when_unknown() -> None:
    logger, stream = capture(Redactor())
    samples = [
        "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx",
        "sk-ant-api03-AbCdEfGhIjKlMnOpQrSt",
        "hvs.CAESIAbCdEfGhIjKlMnOpQrStUv",
        "Bearer abc.def.ghi-jkl",
        "AKIAABCDEFGHIJKLMNOP",
    ]
    for sample in samples:
        logger.warning("upstream said: %s", sample)
    text = stream.getvalue()
    for sample in samples:
        assert sample not in text
    assert text.count(REDACTED) == len(samples)


def test_exception_text_is_scrubbed() -> None:
    redactor = Redactor()
    redactor.add("secret-in-exception-123")
    logger, stream = capture(redactor)
    try:
        raise RuntimeError("failed with secret-in-exception-123")
    except RuntimeError:
        logger.exception("boom")
    assert "secret-in-exception-123" not in stream.getvalue()
    assert "RuntimeError" in stream.getvalue()


def test_discarded_values_are_no_longer_needed_to_scrub() -> None:
    redactor = Redactor()
    redactor.add("temporary-secret-1")
    redactor.discard("temporary-secret-1")
    assert redactor.scrub("temporary-secret-1") == "temporary-secret-1"


def test_a_remembered_field_is_scrubbed_of_a_value_added_after_it_was_first_seen() -> None:
    redactor = Redactor()
    field = "model-late-secret-value"
    assert redactor.scrub_field(field) == field  # remembered clean
    redactor.add("late-secret-value")
    assert redactor.scrub_field(field) == f"model-{REDACTED}"
    redactor.discard("late-secret-value")
    assert redactor.scrub_field(field) == field


def test_scrub_field_gives_what_scrub_gives_for_shapes_and_values_seen_again() -> None:
    redactor = Redactor()
    redactor.add("plain-looking-secret-value")
    texts = ["sk-proj-AbCdEfGhIjKlMnOpQrStUvWx", "x plain-looking-secret-value", "bench-model"]
    for _ in range(3):
        assert [redactor.scrub_field(t) for t in texts] == [redactor.scrub(t) for t in texts]


def test_scrub_field_stays_bounded_by_values_that_never_come_back() -> None:
    redactor = Redactor()
    for number in range(MAX_KNOWN * 3):
        redactor.scrub_field(f"request-{number}")
    redactor.scrub_field("x" * (MAX_KNOWN_CHARS + 1))
    assert len(redactor._known) <= MAX_KNOWN


def test_timestamp_formats_each_second_and_millisecond_as_gmtime_does() -> None:
    for created in (1_700_000_000.0, 1_700_000_000.999, 1_700_000_001.0005, 1_700_000_000.25):
        expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        assert timestamp(created) == f"{expected}.{int(created * 1000) % 1000:03d}Z"
