"""The access log line in process: queued for the batched handler directly, and still a record
for any other handler or filter put on ``sealgate.access``."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from gateway import logs
from gateway.api import access

ENTRY: dict[str, object] = {"request_id": "req-1", "method": "POST", "status": 200, "key_id": None}


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """``logs.configure`` as serve runs it, writing to a buffer; afterwards every logger and
    handler as it was. ``configure`` is process-wide: it replaces the root's handlers and puts a
    redacting filter on every handler it finds, pytest's own included, and that filter takes a
    record's ``exc_info`` off (into its scrubbed text), so left in place it would change what
    later tests' ``caplog`` sees."""
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    filters = [(h, h.filters[:]) for lg in loggers for h in lg.handlers]
    globals_ = (logs._ACCESS_HANDLER, logs._ACCESS_FILTER)
    out = io.StringIO()
    logs.configure("warning", stream=out, access_log=True)
    try:
        yield out
    finally:
        if logs._ACCESS_HANDLER is not None:
            logs._ACCESS_HANDLER.close()
        logs._ACCESS_HANDLER, logs._ACCESS_FILTER = globals_
        for logger, handlers, level, propagate in saved:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
        for handler, kept in filters:
            handler.filters[:] = kept


def lines(out: io.StringIO) -> list[dict[str, object]]:
    logging.getLogger(logs.ACCESS_LOGGER).handlers[0].flush()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_the_access_line_is_written_with_every_field(stream: io.StringIO) -> None:
    access.write(dict(ENTRY))
    (line,) = lines(stream)
    assert line["logger"] == "sealgate.access" and line["msg"] == "request"
    assert {name: line[name] for name in ENTRY} == ENTRY


def test_a_handler_added_to_the_access_logger_still_gets_each_line(stream: io.StringIO) -> None:
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    keeper = Keep()
    logger = logging.getLogger(logs.ACCESS_LOGGER)
    logger.addHandler(keeper)
    try:
        access.write(dict(ENTRY))
    finally:
        logger.removeHandler(keeper)
    assert len(seen) == 1 and json.loads(seen[0].getMessage())["request_id"] == "req-1"
    assert [line["request_id"] for line in lines(stream)] == ["req-1"]


def test_a_secret_in_a_field_is_redacted_on_the_queued_line(stream: io.StringIO) -> None:
    secret = "sk-" + "x" * 30
    access.write({**ENTRY, "model": secret})
    (line,) = lines(stream)
    assert line["model"] == logs.REDACTED
