"""The hot path as raw ASGI: ``POST /v1/chat/completions`` and ``POST /v1/embeddings``.

These two routes are what every application call goes through, so they skip the framework's
routing, dependency resolution and middleware and do only what the request needs: read the body
with a cap, check it with the pure policy functions, authenticate from the in-memory cache, route.
Everything else (models, health, admin) is the FastAPI app behind this one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import policy
from gateway.asgi_util import (
    ClientGone,
    read_json,
    send_body,
    send_error,
    send_stream,
    unless_disconnected,
)
from gateway.errors import GatewayError, ModelNotFound, PermissionDenied
from gateway.governance.streams import CountingStream, reply_tokens
from gateway.providers.base import Stream
from gateway.store.keys import KeyRecord

if TYPE_CHECKING:
    from gateway.app import Services

log = logging.getLogger("sealgate")

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


class HotPath:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services
        self.router = services.router
        self.governance = services.governance
        self.limit = services.config.server.max_body_bytes
        self.routes: dict[str, Handler] = {
            "/v1/chat/completions": self.chat,
            "/v1/embeddings": self.embeddings,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self.routes.get(scope["path"])
            if handler is not None:
                try:
                    await handler(scope, receive, send)
                except GatewayError as exc:
                    if exc.http_status >= 500:
                        log.warning("request failed", extra={"sg_code": exc.code})
                    await send_error(send, exc)
                except ClientGone:
                    pass
                except Exception as exc:
                    log.error("unexpected error", exc_info=exc)
                    await send_error(send, GatewayError("internal error"))
                return
        await self.app(scope, receive, send)

    async def _caller(self, headers: dict[bytes, bytes], model: str) -> KeyRecord:
        authorization = headers.get(b"authorization")
        record = await self.services.auth.authenticate(
            authorization.decode("latin-1") if authorization is not None else None
        )
        if model not in self.router.groups:
            raise ModelNotFound(f"model {model!r} does not exist", param="model")
        if not record.allows(model):
            raise PermissionDenied(f"this key may not use model {model!r}", param="model")
        return record

    async def chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        body: dict[str, Any] = await read_json(receive, headers, self.limit)
        model = policy.check_chat(body)
        record = await self._caller(headers, model)
        admission = await self.governance.admit(record, model, body, headers, "chat")
        if body.get("stream"):
            try:
                upstream, deployment = await unless_disconnected(
                    receive, self.router.chat_stream(model, body, admission.gate)
                )
            except BaseException as exc:
                admission.fail(exc)
                raise
            stream = CountingStream(upstream)

            async def finished(_: Stream, outcome: str) -> None:
                admission.settle(stream.usage, deployment, outcome, stream.counted)

            await send_stream(receive, send, stream, finished)
            return
        try:
            reply, deployment = await unless_disconnected(
                receive, self.router.chat(model, body, admission.gate)
            )
        except BaseException as exc:
            admission.fail(exc)
            raise
        await send_body(send, 200, reply.body)
        admission.settle(reply.usage, deployment, "ok", reply_tokens(reply))

    async def embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        body: dict[str, Any] = await read_json(receive, headers, self.limit)
        model = policy.check_embeddings(body)
        record = await self._caller(headers, model)
        admission = await self.governance.admit(record, model, body, headers, "embeddings")
        try:
            reply, deployment = await unless_disconnected(
                receive, self.router.embeddings(model, body, admission.gate)
            )
        except BaseException as exc:
            admission.fail(exc)
            raise
        await send_body(send, 200, reply.body)
        admission.settle(reply.usage, deployment, "ok", 0)
