"""The redacting filter scrubs live secret values and credential shapes from every log record."""

from __future__ import annotations

import io
import json
import logging

from gateway.logs import REDACTED, JsonFormatter, RedactingFilter, Redactor


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
