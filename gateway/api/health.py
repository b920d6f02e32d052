"""Liveness, readiness and metrics.

``/health/live`` answers while the process serves. ``/health/ready`` asks every dependency the
replica needs (database, secret backends and credentials, governance counters and outbox) plus
the start-up facts (process hardening, integrity, signed policies) and answers 503 when any is
not ok. The dependencies are asked at the same time, and none is waited for longer than
``PING_SECONDS`` (a database that does not answer is ``{"ok": false, "error": "timeout"}``), so
readiness always answers. ``/metrics`` is the Prometheus text, for the admin credential, an
unscoped viewer token or a ``metrics`` token (``gateway.governance.roles``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from sqlalchemy import Engine, text
from starlette.responses import JSONResponse, Response

from gateway.auth import AdminCredential
from gateway.governance import principals, roles
from gateway.governance.tenancy import Tenancy
from gateway.metrics import METRICS

Check = Callable[[], Awaitable[dict[str, Any]]]
# The longest readiness waits for the database; other checks bound their own waits (Vault 2 s,
# Redis 0.5 s, credentials 2 s).
PING_SECONDS = 2.0


@dataclass
class Readiness:
    """What ``/health/ready`` asks: the database, each check (a dependency asked at every call),
    and the facts start-up established (``facts``: name -> {"ok": ..., ...})."""

    engine: Engine
    admin: AdminCredential
    checks: list[Check] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    tenancy: Tenancy | None = None  # where admin tokens are looked up (None: admin key only)

    def router(self) -> APIRouter:
        return router(self.engine, self.checks, self.facts, self.admin, self.tenancy)


def router(
    engine: Engine,
    checks: list[Check],
    facts: dict[str, Any],
    admin: AdminCredential,
    tenancy: Tenancy | None,
) -> APIRouter:
    routes = APIRouter()
    database = DatabaseProbe(engine)

    @routes.get("/metrics")
    async def metrics(request: Request) -> Response:
        authorization = request.headers.get("authorization")
        if tenancy is None:
            admin.check(authorization)
        else:
            who = await principals.resolve(authorization, admin, tenancy)
            roles.require(who, "metrics:read", None)
        return Response(METRICS.render(), media_type="text/plain; version=0.0.4")

    @routes.get("/health/live")
    async def live() -> Response:
        return JSONResponse({"status": "ok"})

    @routes.get("/health/ready")
    async def ready() -> Response:
        found: dict[str, Any] = {"database": {}}
        for result in await asyncio.gather(database.check(), *(check() for check in checks)):
            found.update(result)
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


class DatabaseProbe:
    """``SELECT 1``, one at a time: a probe that outlives its wait is joined by the next, so a
    database that hangs holds one thread, not one per readiness call."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._probe: asyncio.Task[None] | None = None

    async def check(self) -> dict[str, Any]:
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._ping())
            self._probe.add_done_callback(_retrieve)
        try:
            await asyncio.wait_for(asyncio.shield(self._probe), PING_SECONDS)
        except TimeoutError:
            return {"database": {"ok": False, "error": "timeout"}}
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return {"database": {"ok": False, "error": type(exc).__name__}}
        return {"database": {"ok": True}}

    async def _ping(self) -> None:
        await anyio.to_thread.run_sync(_ping, self._engine)


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


def _ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
