"""Liveness, readiness and metrics.

``/health/live`` answers while the process serves. ``/health/ready`` asks every dependency the
replica needs (database, secret backends, governance counters and outbox) plus the start-up
facts (process hardening, integrity, signed policies) and answers 503 when any is not ok.
``/metrics`` is the Prometheus text, for the admin credential only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from sqlalchemy import Engine, text
from starlette.responses import JSONResponse, Response

from gateway.auth import AdminCredential
from gateway.metrics import METRICS

Check = Callable[[], Awaitable[dict[str, Any]]]


@dataclass
class Readiness:
    """What ``/health/ready`` asks: the database, each check (a dependency asked at every call),
    and the facts start-up established (``facts``: name -> {"ok": ..., ...})."""

    engine: Engine
    admin: AdminCredential
    checks: list[Check] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def router(self) -> APIRouter:
        return router(self.engine, self.checks, self.facts, self.admin)


def router(
    engine: Engine, checks: list[Check], facts: dict[str, Any], admin: AdminCredential
) -> APIRouter:
    routes = APIRouter()

    @routes.get("/metrics")
    async def metrics(request: Request) -> Response:
        admin.check(request.headers.get("authorization"))
        return Response(METRICS.render(), media_type="text/plain; version=0.0.4")

    @routes.get("/health/live")
    async def live() -> Response:
        return JSONResponse({"status": "ok"})

    @routes.get("/health/ready")
    async def ready() -> Response:
        found: dict[str, Any] = {}
        try:
            await anyio.to_thread.run_sync(_ping, engine)
            found["database"] = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            found["database"] = {"ok": False, "error": type(exc).__name__}
        for check in checks:
            found.update(await check())
        found.update(facts)
        ok = all(_ok(v) for v in found.values())
        status = 200 if ok else 503
        return JSONResponse({"status": "ready" if ok else "not_ready", "checks": found}, status)

    return routes


def _ok(value: Any) -> bool:
    if isinstance(value, dict):
        if "ok" in value:
            return bool(value["ok"])
        return all(_ok(v) for v in value.values())
    return True


def _ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
