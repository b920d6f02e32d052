"""How a GatewayError is written on the wire, and the one guard around every request.

Each public wire format has one renderer (``RENDERERS``): the OpenAI shape for ``/v1/*`` and the
admin API, the Anthropic shape for ``/v1/messages``. ``guard`` wraps every HTTP request the
gateway serves (``gateway.api.app``): a GatewayError becomes its status and body; anything else
becomes a 500 ``internal error`` that names nothing of the cause, logged here and nowhere else,
its traceback at most once a minute for each cause (``logs.TracebackThrottle``: a caller who
found one cannot flood the log with it) and counted in ``sealgate_internal_errors_total``; a
client that went away ends quietly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from gateway.api.asgi import ClientGone, send_error
from gateway.errors import GatewayError
from gateway.logs import TracebackThrottle
from gateway.metrics import METRICS, REQUESTS
from gateway.wire.anthropic.vocabulary import error_body as anthropic_body

log = logging.getLogger("sealgate")

Renderer = Callable[[GatewayError], dict[str, Any]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def openai_body(exc: GatewayError) -> dict[str, Any]:
    return exc.body()


__all__ = ["RENDERERS", "Renderer", "anthropic_body", "guard", "internal_error", "openai_body"]

RENDERERS: dict[str, Renderer] = {"openai": openai_body, "anthropic": anthropic_body}
TRACEBACKS = TracebackThrottle()
INTERNAL_ERRORS = METRICS.counter(
    "sealgate_internal_errors_total", "requests answered 500 because of an unexpected failure"
)


def renderer_for(path: str) -> Renderer:
    return anthropic_body if path.startswith("/v1/messages") else openai_body


def internal_error() -> GatewayError:
    """The error every unexpected failure is answered with: it says nothing of the cause."""
    return GatewayError("internal error")


def error_json(exc: GatewayError, render: Renderer) -> bytes:
    return json.dumps(render(exc)).encode()


async def guard(scope: Scope, receive: Receive, send: Send, app: App, count: bool) -> None:
    """Serve one HTTP request with ``app``, answering every failure in the route's own shape.
    ``count``: record the request in ``sealgate_requests_total`` (the inference routes)."""
    started = False

    async def tracked(message: Message) -> None:
        nonlocal started
        if message["type"] == "http.response.start":
            started = True
        await send(message)

    render = renderer_for(scope["path"])
    status = "200"
    try:
        await app(scope, receive, tracked)
    except GatewayError as exc:
        status = str(exc.http_status)
        if exc.http_status >= 500 and not exc.logged:  # logged: its cause is in the log already
            log.warning("request failed", extra={"sg_code": exc.code, "sg_path": scope["path"]})
        if not started:
            await send_error(send, exc, render(exc))
    except ClientGone:
        status = "499"
    except Exception as exc:  # the last line of defence: a 500 that leaks nothing
        status = "500"
        INTERNAL_ERRORS[()] += 1
        unlogged = TRACEBACKS.admit(exc)
        if unlogged is not None:
            extra = {"sg_path": scope["path"][:200], "sg_unlogged_since": unlogged}
            log.error("unexpected error", exc_info=exc, extra=extra)
        if not started:
            internal = internal_error()
            await send_error(send, internal, render(internal))
    if count:
        REQUESTS[(("route", scope["path"]), ("status", status))] += 1
