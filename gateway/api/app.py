"""The ASGI application: the inference routes (raw ASGI, ``inference.py``) in front of a FastAPI
app for models, health, metrics and admin, with one guard around every request (``errors.py``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api import admin, health
from gateway.api.access import AccessLayer
from gateway.api.admin.context import AdminContext
from gateway.api.admin.gate import AdminGate, is_admin
from gateway.api.completions import CompletionsRoute
from gateway.api.conversations import Conversations
from gateway.api.errors import App, guard, internal_error
from gateway.api.inference import Inference
from gateway.api.mcp_route import is_mcp, not_enabled
from gateway.api.responses import ResponsesRoute
from gateway.api.ui import is_ui
from gateway.auth import Authenticator
from gateway.errors import GatewayError, InvalidRequest, ModelNotFound

if TYPE_CHECKING:
    from gateway.api.mcp import McpEndpoint  # the MCP SDK: imported only with mcp.servers

JSON = "application/json"
Hook = Callable[[], Awaitable[None]]


def error_response(exc: GatewayError) -> Response:
    return Response(
        json.dumps(exc.body()), status_code=exc.http_status, headers=exc.headers, media_type=JSON
    )


class Gateway:
    """The outer ASGI callable: every HTTP request runs inside ``guard``; the inference routes
    are served directly, the admin routes through their gate (the caller first, then a strict
    body), everything else by the FastAPI app."""

    def __init__(
        self,
        inference: Inference,
        app: FastAPI,
        admin: AdminGate,
        access: AccessLayer,
        mcp: McpEndpoint | None = None,
        ui: ASGIApp | None = None,
    ) -> None:
        self.inference = inference
        self.app = app
        self.admin = admin
        self.access = access
        self.mcp = mcp
        self.ui = ui  # the dashboard (gateway/api/ui/), when config ui.enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # lifespan
            return
        handler = self.inference.handler(scope)
        if handler is not None:
            await self.access(scope, receive, send, handler, counted, scope["path"])
        elif is_admin(scope["path"]):
            await self.access(scope, receive, send, self.admin, uncounted, None)
        elif is_mcp(scope["path"]):
            endpoint = self.mcp if self.mcp is not None else not_enabled
            await self.access(scope, receive, send, endpoint, uncounted, None)
        elif self.ui is not None and is_ui(scope["path"]):
            await self.access(scope, receive, send, self.ui, uncounted, None)
        else:
            await self.access(scope, receive, send, self.app, uncounted, None)


async def counted(scope: Scope, receive: Receive, send: Send, app: App) -> None:
    await guard(scope, receive, send, app, count=True)


async def uncounted(scope: Scope, receive: Receive, send: Send, app: App) -> None:
    await guard(scope, receive, send, app, count=False)


def build_app(
    inference: Inference,
    authenticator: Authenticator,
    admin_context: AdminContext,
    readiness: health.Readiness,
    startup: list[Hook],
    shutdown: list[Hook],
    access_log: bool = True,
    mcp: McpEndpoint | None = None,
    dashboard: Callable[[FastAPI], ASGIApp] | None = None,
    conversations: Conversations | None = None,
) -> Gateway:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for hook in startup:
            await hook()
        yield
        for hook in shutdown:
            await hook()

    app = FastAPI(
        title="Sealgate",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # FastAPI's native OpenTelemetry would be one more place a header could land; the
        # gateway's own observability goes through the redacting log filter instead.
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
    )

    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
        return error_response(InvalidRequest(message, param=where or None))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        kind = {404: "not_found_error", 405: "invalid_request_error"}.get(exc.status_code, "error")
        body = {"error": {"message": str(exc.detail), "type": kind, "param": None, "code": None}}
        return Response(json.dumps(body), status_code=exc.status_code, media_type=JSON)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Answered here because Starlette's error middleware answers before re-raising; the
        # outer guard (errors.guard) then logs it, once.
        return error_response(internal_error())

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        record = await authenticator.authenticate(request.headers.get("authorization"))
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "sealgate"}
            for m in inference.router.models()
            if record.allows(m)
        ]
        return JSONResponse({"object": "list", "data": data})

    @app.get("/v1/models/{model_id:path}")
    async def model(request: Request, model_id: str) -> Response:
        # issue 14: only a model this key may use; any other name is a 404, as an unknown one
        record = await authenticator.authenticate(request.headers.get("authorization"))
        found = inference.router.resolve(model_id)
        if found is None or not (record.allows(model_id) or record.allows(found[0])):
            raise ModelNotFound(f"model {model_id!r} does not exist", param="model")
        return JSONResponse(
            {"id": model_id, "object": "model", "created": 0, "owned_by": "sealgate"}
        )

    app.state.admin = admin_context
    app.include_router(readiness.router())
    for routes in admin.routers(admin_context):
        app.include_router(routes)
    # issue 14: the Responses and legacy completions routes, on the inference path
    inference.routes["/v1/responses"] = ResponsesRoute(inference, conversations).handle
    inference.routes["/v1/completions"] = CompletionsRoute(inference).handle
    gate = AdminGate(app, admin_context, inference.limit)
    ui = dashboard(app) if dashboard is not None else None  # it calls the admin routes in `app`
    return Gateway(inference, app, gate, AccessLayer(access_log), mcp, ui)
