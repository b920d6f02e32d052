"""Structured JSON logs, with a redacting filter on every handler.

The filter scrubs two kinds of secret from each record before any handler formats it: the live
values the process holds (registered by the secrets broker and the auth layer while they hold
them), and anything shaped like a provider key, a Vault token or a bearer credential. It runs on
the message, its arguments, and the exception text, so a secret inside an exception message from a
third-party client is scrubbed too.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

REDACTED = "[REDACTED]"

# Shapes of credentials that must never reach a log line, whoever logs them.
KEY_SHAPES = re.compile(
    r"""
    (?:sk|rk|pk)-[A-Za-z0-9_\-]{16,}            # OpenAI, Anthropic (sk-ant-…), Sealgate (sk-sg-…)
    | sga-[A-Za-z0-9_\-]{16,}                   # Sealgate admin keys
    | hv[sbr]\.[A-Za-z0-9_\-]{20,}               # Vault/OpenBao service, batch, recovery tokens
    | \bs\.[A-Za-z0-9]{20,}                     # legacy Vault tokens
    | AIza[0-9A-Za-z_\-]{30,}                   # Google API keys
    | ya29\.[A-Za-z0-9_\-.]{20,}                 # Google OAuth access tokens
    | eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{16,}  # signed JWTs
    | -----BEGIN[A-Z ]*PRIVATE\ KEY-----[^-]*(?:-----END[A-Z ]*PRIVATE\ KEY-----)?  # PEM keys
    | (?:AKIA|ASIA)[0-9A-Z]{16}                 # AWS access key ids
    | xai-[A-Za-z0-9]{20,}
    | gsk_[A-Za-z0-9]{20,}
    | (?i:bearer)\s+[A-Za-z0-9._~+/\-]{8,}=*    # any bearer credential
    | (?i:api[-_]?key|x-api-key|token|secret_id|password)(?:["']?\s*[:=]\s*["']?)[^\s"',}]{6,}
    """,
    re.VERBOSE,
)

# Loggers of third-party clients that would log request details at DEBUG: held at WARNING.
QUIET_LOGGERS = ("aiohttp", "httpx", "httpcore", "hpack", "urllib3", "requests", "hvac", "asyncio")


class Redactor:
    """The set of live secret values to scrub, plus the credential shapes above."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        # What ``scrub_field`` found for the current set of values. A change to the set binds a
        # new dict, so a result worked out under the old set can only land in the old dict.
        self._known: dict[str, str] = {}

    def add(self, value: str) -> None:
        if len(value) >= 6 and value not in self._values:  # a value held already: nothing new
            with self._lock:
                self._values.add(value)
                self._known = {}
                self._pattern = None

    def discard(self, value: str) -> None:
        with self._lock:
            self._values.discard(value)
            self._known = {}
            self._pattern = None

    def scrub(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None and self._values:
            with self._lock:
                alternatives = sorted(self._values, key=len, reverse=True)
                pattern = self._pattern = re.compile("|".join(map(re.escape, alternatives)))
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        return KEY_SHAPES.sub(REDACTED, text)

    def scrub_field(self, text: str) -> str:
        """``scrub`` for a short value that comes back line after line (a method, a model, a
        deployment, a key's id: the access log's, once per request): what ``scrub`` made of it
        is remembered until the set of live values changes, so the credential shapes are not
        searched again for the same text. The same result as ``scrub``, always."""
        known = self._known
        clean = known.get(text)
        if clean is not None:
            return clean
        clean = self.scrub(text)
        if len(text) <= MAX_KNOWN_CHARS and known is self._known:
            if len(known) >= MAX_KNOWN:  # ids that never come back fill it: start again
                known.clear()
            known[text] = clean
        return clean


MAX_KNOWN = 256  # values ``scrub_field`` remembers
MAX_KNOWN_CHARS = 200  # the longest value it remembers (the access log's path is cut there)
REDACTOR = Redactor()


class RedactingFilter(logging.Filter):
    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if record.__dict__.get(PREFORMATTED) is _SCRUBBED and self.redactor is REDACTOR:
            return True  # json_line scrubbed every value with this redactor
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed format string must not lose the record
            message = f"{record.msg!s} {record.args!r}"
        record.msg = self.redactor.scrub(message)
        record.args = None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redactor.scrub(text)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.redactor.scrub(record.stack_info)
        for name, value in list(record.__dict__.items()):
            if name.startswith("sg_") and isinstance(value, str):
                setattr(record, name, self.redactor.scrub(value))
        return True


# A record whose message is already its whole JSON line, made by ``json_line`` (the access
# log's, once per request): ``json_line`` scrubbed each of its values, so the filter does not
# scrub the line again (one pass of the credential shapes over a whole line costs several times
# more than over its short values), and the formatter passes it through.
PREFORMATTED = "preformatted_json"
_SCRUBBED = object()
PREFORMATTED_EXTRA = {PREFORMATTED: _SCRUBBED}  # ``extra`` of a line from json_line


_SECOND: tuple[int, str] = (-1, "")  # the last whole second ``timestamp`` formatted


def timestamp(created: float) -> str:
    """A log line's ``ts``: UTC, milliseconds. The date and time of day are formatted once per
    second (the access log writes one line per request)."""
    global _SECOND
    second, text = _SECOND
    if second != int(created):
        second = int(created)
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _SECOND = (second, text)
    return f"{text}.{int(created * 1000) % 1000:03d}Z"


def json_line(logger: str, msg: str, fields: dict[str, Any]) -> str:
    """The line ``JsonFormatter`` would write for ``fields`` (names without ``sg_``), each
    string value scrubbed as the filter scrubs them, made in one ``json.dumps`` (its C encoder)
    instead of record attributes read back one by one. Log it with ``extra=PREFORMATTED_EXTRA``."""
    scrub = REDACTOR.scrub_field
    entry: dict[str, Any] = {
        "ts": timestamp(time.time()),
        "level": "info",
        "logger": logger,
        "msg": scrub(msg),
    }
    for name, value in fields.items():
        entry[name] = scrub(value) if isinstance(value, str) else value
    return _ENCODE(entry)


# ``json.dumps(entry, default=str)``'s encoder, made once (``dumps`` makes one per call when
# given ``default``): the same text.
_ENCODE = json.JSONEncoder(default=str).encode


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if record.__dict__.get(PREFORMATTED) is _SCRUBBED:
            return record.getMessage()
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name.startswith("sg_"):
                entry[name[3:]] = value
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, default=str)


def install_redaction(root: logging.Logger | None = None) -> None:
    """Put the redacting filter on every handler of ``root`` and of every existing logger."""
    loggers = [root or logging.getLogger()]
    loggers += [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())


ACCESS_LOGGER = "sealgate.access"
ACCESS_FLUSH_SECONDS = 0.05  # the longest an access log line waits before it is written


class BatchedStreamHandler(logging.Handler):
    """A handler that writes its lines in batches: the access log's, at one line per request.

    ``emit`` formats the line and appends it to a deque (no lock, no system call on the event
    loop); a thread writes what waits every ``interval`` seconds in one write. A write per line
    would be a system call per request on the event loop, and each one hands the interpreter
    lock to whichever other thread wants it (the spend writer, the span sender), for up to the
    switch interval, before the loop may go on. ``flush`` and ``close`` (``logging.shutdown`` at
    exit) write what waits, so a stopping process loses no line; a killed one loses at most the
    last ``interval``."""

    def __init__(self, stream: Any, interval: float = ACCESS_FLUSH_SECONDS) -> None:
        super().__init__()
        self.stream = stream
        self._interval = interval
        self._lines: deque[str] = deque()
        self._writing = threading.Lock()  # the writer's, never taken by emit
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sealgate-access-log", daemon=True)
        self._thread.start()

    def handle(self, record: logging.LogRecord) -> bool:  # without Handler's lock around emit
        if self.filter(record):
            self.emit(record)
            return True
        return False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)

    def flush(self) -> None:
        with self._writing:
            lines = self._lines
            taken = [lines.popleft() for _ in range(len(lines))]
            if taken:
                self.stream.write("\n".join(taken) + "\n")
                self.stream.flush()

    def _run(self) -> None:
        while not self._closed.wait(self._interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - a full disk must not end the writer
                self._lines.clear()

    def close(self) -> None:
        self._closed.set()
        try:
            self.flush()
        finally:
            super().close()


_ACCESS_HANDLER: BatchedStreamHandler | None = None
_ACCESS_FILTER: RedactingFilter | None = None


def queue_access_line(line: str) -> bool:
    """The access log's line from ``json_line``, queued for the batched handler directly, when
    that handler (with its redacting filter and JSON formatter, as ``configure`` left them) is
    all the line would meet: what ``log.handle`` of its record would do (the filter passes a
    ``json_line`` line as it is, the formatter writes its message), without making the record
    (its clock, thread and process look-ups). False: nothing queued, log the record instead
    (another handler or filter was added, a test capturing the logger)."""
    handler = _ACCESS_HANDLER
    if handler is None:
        return False
    access = logging.getLogger(ACCESS_LOGGER)
    handlers = access.handlers
    if len(handlers) != 1 or handlers[0] is not handler or access.filters:
        return False
    filters = handler.filters
    if len(filters) != 1 or filters[0] is not _ACCESS_FILTER or handler.level > logging.INFO:
        return False
    if type(handler.formatter) is not JsonFormatter:
        return False
    handler._lines.append(line)
    return True


def configure(level: str = "info", stream: Any = None, access_log: bool = True) -> None:
    """JSON lines on stderr through the redacting filter; third-party client debug logging off.
    The access log (``ACCESS_LOGGER``, at info) is written whatever ``level`` is, unless
    ``access_log`` is False."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    access = logging.getLogger(ACCESS_LOGGER)
    access.setLevel(logging.INFO if access_log else logging.WARNING)
    global _ACCESS_HANDLER, _ACCESS_FILTER
    if _ACCESS_HANDLER is not None:
        access.removeHandler(_ACCESS_HANDLER)
        _ACCESS_HANDLER.close()
    _ACCESS_HANDLER = BatchedStreamHandler(stream or sys.stderr)
    _ACCESS_HANDLER.setFormatter(JsonFormatter())
    _ACCESS_FILTER = RedactingFilter()
    _ACCESS_HANDLER.addFilter(_ACCESS_FILTER)
    access.addHandler(_ACCESS_HANDLER)
    access.propagate = False  # its lines go through the batched handler, to the same stream
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    install_redaction()


class TracebackThrottle:
    """At most one traceback per distinct cause per ``period`` seconds, so that a request that
    fails unexpectedly cannot be repeated into a flood of the log. A cause is the exception's
    type and the line of code that raised it; the failures of a cause in between are counted,
    and the count goes with its next traceback. At most ``max_causes`` are remembered (then the
    memory starts over), so the throttle's own state is bounded too."""

    def __init__(
        self,
        period: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_causes: int = 1024,
    ) -> None:
        self.period = period
        self.clock = clock
        self.max_causes = max_causes
        self._causes: dict[tuple[str, str, int], tuple[float, int]] = {}

    def admit(self, exc: BaseException) -> int | None:
        """None: do not log this one's traceback. Otherwise log it, with the number of
        failures of the same cause that were not logged since the last one."""
        key = cause_of(exc)
        now = self.clock()
        last = self._causes.get(key)
        if last is not None and now - last[0] < self.period:
            self._causes[key] = (last[0], last[1] + 1)
            return None
        if len(self._causes) >= self.max_causes:
            self._causes.clear()
        self._causes[key] = (now, 0)
        return last[1] if last is not None else 0


def cause_of(exc: BaseException) -> tuple[str, str, int]:
    """The exception's type and the file and line that raised it."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return type(exc).__qualname__, "", 0
    return type(exc).__qualname__, tb.tb_frame.f_code.co_filename, tb.tb_lineno
