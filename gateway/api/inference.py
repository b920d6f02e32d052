"""The hot path as raw ASGI: ``POST /v1/chat/completions``, ``/v1/embeddings`` and ``/v1/messages``.

These routes are what every application call goes through, so they skip the framework's routing,
dependency resolution and middleware and do only what the request needs: read the body with a cap,
check it with the pure policy functions, authenticate from the in-memory cache, route. The
Anthropic-compatible ``/v1/messages`` is translated to the same internal call (anthropic_api.py)
and back. Everything else (models, health, admin) is the FastAPI app behind this one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api import validation as policy
from gateway.api.asgi import (
    ClientGone,
    read_json,
    send_body,
    send_error,
    send_stream,
    unless_disconnected,
)
from gateway.errors import GatewayError, ModelNotFound, PermissionDenied
from gateway.governance.admission import Admission
from gateway.governance.core import Kind
from gateway.governance.streams import CountingStream, reply_tokens
from gateway.metrics import REQUESTS
from gateway.providers.base import Stream, Usage
from gateway.routing.router import Plan
from gateway.store.keys import KeyRecord
from gateway.wire import anthropic as anthropic_api

if TYPE_CHECKING:
    from gateway.api.app import Services

log = logging.getLogger("sealgate")
T = TypeVar("T")

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
ErrorBody = Callable[[GatewayError], dict[str, Any]]


def openai_error(exc: GatewayError) -> dict[str, Any]:
    return exc.body()


async def routed(receive: Receive, admission: Admission, call: Awaitable[T]) -> T:
    """Route the call (cancelled if the client goes away); if it fails, release what the
    admission reserved before the error goes on."""
    try:
        return await unless_disconnected(receive, call)
    except BaseException as exc:
        admission.fail(exc)
        raise


class AnthropicStream:
    """An internal (OpenAI-format) stream re-emitted as Anthropic events."""

    def __init__(self, inner: Stream, model: str) -> None:
        self.inner = inner
        self.translator = anthropic_api.EventTranslator(model)

    @property
    def usage(self) -> Usage | None:
        return self.inner.usage

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner.chunks():
            events = self.translator.feed(chunk)
            if events:
                yield b"".join(events)
        yield b"".join(self.translator.finish())

    async def aclose(self) -> None:
        await self.inner.aclose()


class HotPath:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services
        self.router = services.router
        self.governance = services.governance
        self.limit = services.config.server.max_body_bytes
        self.routes: dict[str, tuple[Handler, ErrorBody]] = {
            "/v1/chat/completions": (self.chat, openai_error),
            "/v1/embeddings": (self.embeddings, openai_error),
            "/v1/messages": (self.messages, anthropic_api.error_body),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            route = self.routes.get(scope["path"])
            if route is not None:
                handler, error_body = route
                status = "200"
                try:
                    await handler(scope, receive, send)
                except GatewayError as exc:
                    status = str(exc.http_status)
                    if exc.http_status >= 500:
                        log.warning("request failed", extra={"sg_code": exc.code})
                    await send_error(send, exc, error_body(exc))
                except ClientGone:
                    status = "499"
                except Exception as exc:  # the last line of defence: a 500 that leaks nothing
                    status = "500"
                    log.error("unexpected error", exc_info=exc)
                    internal = GatewayError("internal error")
                    await send_error(send, internal, error_body(internal))
                REQUESTS[(("route", scope["path"]), ("status", status))] += 1
                return
        await self.app(scope, receive, send)

    async def _caller(self, authorization: bytes | None, model: str) -> KeyRecord:
        record = await self.services.auth.authenticate(
            authorization.decode("latin-1") if authorization is not None else None
        )
        if model not in self.router.groups:
            raise ModelNotFound(f"model {model!r} does not exist", param="model")
        if not record.allows(model):
            raise PermissionDenied(f"this key may not use model {model!r}", param="model")
        return record

    async def _admit(
        self,
        record: KeyRecord,
        model: str,
        body: dict[str, Any],
        headers: Mapping[bytes, bytes],
        kind: Kind,
    ) -> tuple[Admission, Plan]:
        """Limits and budgets, and the first deployment's limits, reserved before routing
        (settled once the answer is out, governance/); the plan is the order routing follows."""
        plan = self.router.plan(model)
        admission = await self.governance.admit(
            record, model, body, headers, kind, plan[0].deployment
        )
        return admission, plan

    async def chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        body: dict[str, Any] = await read_json(receive, headers, self.limit)
        model = policy.check_chat(body)
        record = await self._caller(headers.get(b"authorization"), model)
        await self._complete(receive, send, headers, body, model, record, anthropic=False)

    async def messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        raw: dict[str, Any] = await read_json(receive, headers, self.limit)
        body = anthropic_api.to_internal(raw)
        model = policy.check_chat(body)
        api_key = headers.get(b"x-api-key")  # the Anthropic SDKs' header
        authorization = b"Bearer " + api_key if api_key else headers.get(b"authorization")
        record = await self._caller(authorization, model)
        await self._complete(receive, send, headers, body, model, record, anthropic=True)

    async def _complete(
        self,
        receive: Receive,
        send: Send,
        headers: Mapping[bytes, bytes],
        body: dict[str, Any],
        model: str,
        record: KeyRecord,
        anthropic: bool,
    ) -> None:
        admission, plan = await self._admit(record, model, body, headers, "chat")
        if body.get("stream"):
            upstream, deployment = await routed(
                receive, admission, self.router.chat_stream(model, body, admission.gate, plan)
            )
            counting = CountingStream(upstream)
            stream: Stream = AnthropicStream(counting, model) if anthropic else counting

            async def finished(_: Stream, outcome: str) -> None:
                admission.settle(counting.usage, deployment, outcome, counting.counted)

            error_body = anthropic_api.error_body if anthropic else openai_error
            await send_stream(receive, send, stream, finished, error_body)
            return
        reply, deployment = await routed(
            receive, admission, self.router.chat(model, body, admission.gate, plan)
        )
        if anthropic:
            message = anthropic_api.to_message(json.loads(reply.body), model)
            await send_body(send, 200, json.dumps(message).encode())
        else:
            await send_body(send, 200, reply.body)
        admission.settle(reply.usage, deployment, "ok", reply_tokens(reply))

    async def embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        body: dict[str, Any] = await read_json(receive, headers, self.limit)
        model = policy.check_embeddings(body)
        record = await self._caller(headers.get(b"authorization"), model)
        admission, plan = await self._admit(record, model, body, headers, "embeddings")
        reply, deployment = await routed(
            receive, admission, self.router.embeddings(model, body, admission.gate, plan)
        )
        await send_body(send, 200, reply.body)
        admission.settle(reply.usage, deployment, "ok", 0)
