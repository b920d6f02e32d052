"""The ASGI application: the hot path (hotpath.py) in front of a FastAPI app for models,
health and admin. Every failure is a GatewayError rendered as an OpenAI-shaped error body.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import Engine, text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from gateway.api.admin import keys as admin
from gateway.api.inference import HotPath
from gateway.auth import AdminCredential, Authenticator
from gateway.config import GatewayConfig
from gateway.errors import GatewayError, InvalidRequest
from gateway.governance.core import Governance
from gateway.integrity import Integrity
from gateway.metrics import METRICS
from gateway.providers.pool import UpstreamPool
from gateway.routing.router import Router
from gateway.secrets.broker import SecretBroker
from gateway.store.keys import KeyStore

log = logging.getLogger("sealgate")

JSON = "application/json"


@dataclass
class Services:
    config: GatewayConfig
    engine: Engine
    keys: KeyStore
    auth: Authenticator
    admin_credential: AdminCredential
    broker: SecretBroker
    pool: UpstreamPool
    router: Router
    governance: Governance
    readiness: dict[str, Any] = field(default_factory=dict)
    integrity: Integrity | None = None


def error_response(exc: GatewayError) -> Response:
    return Response(
        json.dumps(exc.body()), status_code=exc.http_status, headers=exc.headers, media_type=JSON
    )


def build_app(services: Services) -> HotPath:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.governance.start()
        watcher = asyncio.create_task(services.integrity.watch()) if services.integrity else None
        yield
        if watcher is not None:
            watcher.cancel()
        await services.governance.close()
        await services.pool.close()
        await services.broker.close()
        services.engine.dispose()

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
    app.state.services = services
    router = services.router
    authenticate = services.auth.authenticate

    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> Response:
        if exc.http_status >= 500:
            log.warning("request failed", extra={"sg_code": exc.code, "sg_path": request.url.path})
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
        log.error("unexpected error", exc_info=exc, extra={"sg_path": request.url.path})
        return error_response(GatewayError("internal error"))

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        record = await authenticate(request.headers.get("authorization"))
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "sealgate"}
            for m in router.models()
            if record.allows(m)
        ]
        return JSONResponse({"object": "list", "data": data})

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        services.admin_credential.check(request.headers.get("authorization"))
        return Response(METRICS.render(), media_type="text/plain; version=0.0.4")

    @app.get("/health/live")
    async def live() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/health/ready")
    async def ready() -> Response:
        checks: dict[str, Any] = {}
        try:
            await anyio.to_thread.run_sync(_ping, services.engine)
            checks["database"] = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            checks["database"] = {"ok": False, "error": type(exc).__name__}
        checks["secrets"] = await services.broker.health()
        checks.update(await services.governance.health())
        checks.update(services.readiness)
        ok = all(_ok(v) for v in checks.values())
        status = 200 if ok else 503
        return JSONResponse({"status": "ready" if ok else "not_ready", "checks": checks}, status)

    admin.mount(app, services)
    return HotPath(app, services)


def _ok(value: Any) -> bool:
    if isinstance(value, dict):
        if "ok" in value:
            return bool(value["ok"])
        return all(_ok(v) for v in value.values())
    return True


def _ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
