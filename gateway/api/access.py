"""Request ids, the access log and the request metrics: the layer around the guard.

Every HTTP request gets an id: the client's ``x-request-id`` when it sent a valid one (1 to
``MAX_REQUEST_ID`` characters of ``[A-Za-z0-9._:-]``; anything else is answered 400, so a
header that could forge or break a log line never reaches one), else one made here. The id goes
back in ``x-request-id`` on every answer, errors included.

When the answer is done, one JSON line goes to the ``sealgate.access`` logger (through the
redacting filter like every other line): request id, method, route, status, latency, and for an
inference call the key id, team, user, project, model, deployment, outcome, time to first token
(streams), tokens and cost, taken from the request's spend record. Never a body, a header value
or a key. The inference routes also feed the latency histograms, the token and cost counters and
the in-flight gauge (``gateway.metrics``).

What the inference code knows about the request reaches this layer through ``current()``: the
request's ``Access`` (a context variable set here, read in the same task).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from starlette.types import Message, Receive, Scope, Send

from gateway import tracing
from gateway.errors import InvalidRequest
from gateway.governance.admission import new_id
from gateway.governance.pricing import NANOS_PER_USD
from gateway.logs import ACCESS_LOGGER, PREFORMATTED_EXTRA, json_line, queue_access_line
from gateway.metrics import COST, FIRST_TOKEN_SECONDS, IN_FLIGHT, REQUEST_SECONDS, TOKENS

if TYPE_CHECKING:
    from gateway.governance.admission import Admission
    from gateway.governance.core import Governance
    from gateway.store.keys import KeyRecord

log = logging.getLogger(ACCESS_LOGGER)

App = Callable[[Scope, Receive, Send], Awaitable[None]]
Guard = Callable[[Scope, Receive, Send, App], Awaitable[None]]

# A team's metadata flag that puts its prompts and answers (redacted) on its requests' spans.
CONTENT_FLAG = "trace_content"
MAX_REQUEST_ID = 128
REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,%d}" % MAX_REQUEST_ID)
MAX_LOGGED_PATH = 200
EVENT_STREAM = b"text/event-stream"
ACCESS_EVENT = "access"  # the sinks' event type


class Access:
    """One request, as far as the access log and the metrics need it."""

    __slots__ = ("admission", "first_event", "key", "request_id", "started", "status", "stream")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.started = time.perf_counter()
        self.status = 0
        self.stream = False
        self.first_event: float | None = None
        self.key: KeyRecord | None = None
        self.admission: Admission | None = None


_CURRENT: ContextVar[Access | None] = ContextVar("sealgate_access", default=None)


def current() -> Access | None:
    """The request being served in this task, or None outside one (tests calling a route)."""
    return _CURRENT.get()


def request_id_of(scope: Scope) -> tuple[str, bool]:
    """The id for this request and whether the client's header (if any) was valid."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if REQUEST_ID.fullmatch(value):
                return value.decode("ascii"), True
            return new_id(), False
    return new_id(), True


async def refuse_request_id(scope: Scope, receive: Receive, send: Send) -> None:
    raise InvalidRequest(
        f"x-request-id must be 1 to {MAX_REQUEST_ID} characters of A-Z, a-z, 0-9, '.', '_', "
        "':' or '-'"
    )


class AccessEvents(Protocol):
    def put(self, type_: str, event_id: str, data: dict[str, object]) -> None: ...


class AccessLayer:
    """Wraps the guard of every HTTP request: the id, the log line, the request metrics.
    ``enabled`` False turns the log line off (ids and metrics stay). With ``events`` (set when
    sinks are configured), each inference request's line also goes to every sink as an
    ``access`` event, through the durable sink queue (``governance.sinks.EventBatcher``)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.events: AccessEvents | None = None

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, app: App, guard: Guard, route: str | None
    ) -> None:
        request_id, valid = request_id_of(scope)
        access = Access(request_id)
        header = (b"x-request-id", request_id.encode("ascii"))

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                access.status = message["status"]
                headers = list(message.get("headers", ()))
                access.stream = any(
                    k == b"content-type" and v.startswith(EVENT_STREAM) for k, v in headers
                )
                message = {**message, "headers": [*headers, header]}
            elif access.stream and access.first_event is None and message.get("body"):
                access.first_event = time.perf_counter()
            await send(message)

        token = _CURRENT.set(access)
        if route is None:
            try:
                await guard(scope, receive, sending, app if valid else refuse_request_id)
            finally:
                _CURRENT.reset(token)
                if self.enabled:
                    write(fields(access, scope))
            return
        IN_FLIGHT[(("route", route),)] += 1
        with tracing.request_span(route, scope["headers"]) as span:
            try:
                await guard(scope, receive, sending, app if valid else refuse_request_id)
            finally:
                _CURRENT.reset(token)
                IN_FLIGHT[(("route", route),)] -= 1
                observe(access, route)
                if span is not None:
                    tracing.finish_request(span, route, access.status, span_facts(access))
                if self.enabled or self.events is not None:
                    entry = fields(access, scope)
                    if self.enabled:
                        write(entry)
                    if self.events is not None:
                        entry["at"] = datetime.now(UTC).isoformat()
                        self.events.put(ACCESS_EVENT, f"access-{new_id()}", entry)


def observe(access: Access, route: str) -> None:
    """The inference metrics of one finished request."""
    elapsed = time.perf_counter() - access.started
    status = str(access.status or 499)  # nothing sent: the client went away
    admission = access.admission
    model = admission.model if admission is not None else ""
    spend = admission.record if admission is not None else None
    deployment = (spend.deployment or "") if spend is not None else ""
    labels = (("route", route), ("model", model), ("deployment", deployment), ("status", status))
    REQUEST_SECONDS.observe(labels, elapsed)
    if access.first_event is not None:
        where = (("route", route), ("model", model), ("deployment", deployment))
        FIRST_TOKEN_SECONDS.observe(where, access.first_event - access.started)
    if spend is not None:
        for kind, count in (
            ("input", spend.prompt_tokens),
            ("output", spend.completion_tokens),
            ("cached", spend.cached_tokens),
        ):
            if count:
                TOKENS[(("model", model), ("deployment", deployment), ("type", kind))] += count
        if spend.cost_nanos:
            COST[(("model", model), ("deployment", deployment))] += spend.cost_nanos / NANOS_PER_USD


def content_traced(governance: Governance, team_id: str | None) -> bool:
    """Does this team's operator want its prompts and answers in its traces (team metadata
    ``trace_content: true``)? Never without tracing on, never for a key of no team."""
    if team_id is None or not tracing.enabled():
        return False
    team = governance.snapshot.teams.get(team_id)
    return team is not None and team.metadata.get(CONTENT_FLAG) is True


def span_facts(access: Access) -> dict[str, object]:
    """What the request's span says of it when it is done (tracing.finish_request)."""
    facts: dict[str, object] = {"sealgate.request_id": access.request_id}
    key = access.key
    if key is not None:
        facts["sealgate.key_id"] = key.id
        facts["sealgate.team_id"] = key.team_id
    admission = access.admission
    if admission is None:
        return facts
    facts["gen_ai.request.model"] = admission.model
    facts["sealgate.project"] = admission.project
    deployment = admission.last_tried
    if deployment is not None:
        facts["gen_ai.provider.name"] = tracing.PROVIDER_NAMES.get(
            deployment.provider, deployment.provider
        )
    spend = admission.record
    if spend is not None:
        facts["sealgate.deployment"] = spend.deployment
        facts["sealgate.outcome"] = spend.status
        facts["gen_ai.usage.input_tokens"] = spend.prompt_tokens
        facts["gen_ai.usage.output_tokens"] = spend.completion_tokens
        facts["sealgate.cost_usd"] = spend.cost_nanos / NANOS_PER_USD
    if access.first_event is not None:
        facts["gen_ai.response.time_to_first_chunk"] = access.first_event - access.started
    return facts


def fields(access: Access, scope: Scope) -> dict[str, object]:
    """What the access log line (and the sinks' ``access`` event) says of one finished
    request: ids, names, numbers; never a header value, a body or a key."""
    elapsed_ms = (time.perf_counter() - access.started) * 1000
    entry: dict[str, object] = {
        "request_id": access.request_id,
        "method": scope["method"],
        "path": scope["path"][:MAX_LOGGED_PATH],
        "status": access.status or 499,
        "latency_ms": round(elapsed_ms, 2),
    }
    key = access.key
    if key is not None:
        entry["key_id"] = key.id
        entry["team_id"] = key.team_id
        entry["user_id"] = key.user_id
    admission = access.admission
    if admission is not None:
        entry["spend_id"] = admission.request_id
        entry["project"] = admission.project
        entry["model"] = admission.model
        spend = admission.record
        if spend is not None:
            entry["deployment"] = spend.deployment
            entry["outcome"] = spend.status
            entry["prompt_tokens"] = spend.prompt_tokens
            entry["completion_tokens"] = spend.completion_tokens
            entry["cached_tokens"] = spend.cached_tokens
            entry["cost_usd"] = spend.cost_nanos / NANOS_PER_USD
    if access.first_event is not None:
        entry["ttft_ms"] = round((access.first_event - access.started) * 1000, 2)
    return entry


def write(entry: dict[str, object]) -> None:
    """The access log line of one finished request: one ``json.dumps``, through the redacting
    filter like every line (``logs.json_line``). Queued for the batched handler as it is when
    nothing else would see the record (``logs.queue_access_line``), else a record made without
    ``log.info``'s walk up the stack for the caller's file and line, which no line of ours shows."""
    if log.isEnabledFor(logging.INFO):
        line = json_line(ACCESS_LOGGER, "request", entry)
        if queue_access_line(line):
            return
        log.handle(log.makeRecord(log.name, logging.INFO, "", 0, line, (), None, None,
                                  PREFORMATTED_EXTRA))  # fmt: skip
