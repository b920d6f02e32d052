"""The admin API. Every route needs ``Authorization: Bearer`` with the gateway admin credential
or an admin token; what each role may do is decided in governance/roles.py, and every change is
written to the audit log (who, what, when; never a key or token).

This module serves virtual keys; governance/admin_routes.py serves teams, users, budgets, admin
tokens, spend reports and the audit log.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from gateway.api.admin import governance_routes as admin_routes
from gateway.errors import InvalidRequest, ModelNotFound, NotFound
from gateway.governance import principals, roles
from gateway.governance.audit import Actor, AuditLog
from gateway.store.keys import KeyRecord

if TYPE_CHECKING:
    from gateway.api.app import Services

log = logging.getLogger("sealgate.admin")

MetadataValue = str | int | float | bool | None | list[str]
Limit = Annotated[int, Field(ge=0, le=10**12)]
Id = Annotated[str, Field(min_length=1, max_length=32)]
LOG_MESSAGES = {"key.create": "virtual key created", "key.revoke": "virtual key revoked"}


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: Annotated[
        list[Annotated[str, Field(min_length=1)]], Field(min_length=1, max_length=1000)
    ]
    expires_at: datetime | None = None
    metadata: Annotated[dict[str, MetadataValue], Field(max_length=64)] = {}
    team_id: Id | None = None
    user_id: Id | None = None
    rpm_limit: Limit | None = None
    tpm_limit: Limit | None = None


class KeyLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rpm_limit: Limit | None = None
    tpm_limit: Limit | None = None


def mount(app: FastAPI, services: Services) -> None:
    tenancy = services.governance.tenancy
    audit = AuditLog(services.engine)

    async def actor(request: Request) -> Actor:
        return await principals.resolve(
            request.headers.get("authorization"), services.admin_credential, tenancy
        )

    async def record(who: Actor, action: str, target: str, detail: dict[str, Any]) -> None:
        await anyio.to_thread.run_sync(audit.record, who, action, target, detail)
        message = LOG_MESSAGES.get(action, "admin action")
        log.info(message, extra={"sg_actor": who.name, "sg_action": action, "sg_target": target})

    async def key_or_404(who: Actor, key_id: str) -> KeyRecord:
        """The key, or 404 when it does not exist or ``who`` may not see it (roles.hidden)."""
        found = await anyio.to_thread.run_sync(services.keys.get, key_id)
        if found is None or roles.hidden(who, "keys", found.team_id):
            raise NotFound(f"no key with id {key_id!r}", code="key_not_found")
        return found

    @app.post("/admin/keys", status_code=201)
    async def create_key(request: Request, spec: CreateKey) -> JSONResponse:
        who = await actor(request)
        team_id = spec.team_id if spec.team_id is not None else roles.visible_team(who)
        # Every id given is resolved before the role is checked, so that one out of the caller's
        # sight gets the answer an unknown one gets (roles.hidden).
        if team_id is not None:
            team = await anyio.to_thread.run_sync(tenancy.team, team_id)
            if team is None or roles.hidden(who, "teams", team_id):
                raise NotFound(f"no team with id {team_id!r}", code="team_not_found")
        user = None
        if spec.user_id is not None:
            user = await anyio.to_thread.run_sync(tenancy.user, spec.user_id)
            if user is None or roles.hidden(who, "users", user.team_id):
                raise NotFound(f"no user with id {spec.user_id!r}", code="user_not_found")
        roles.require(who, "keys:write", team_id)
        if user is not None and user.team_id is not None and user.team_id != team_id:
            raise InvalidRequest("the user belongs to another team", param="user_id")
        known = set(services.router.models())
        unknown = sorted(set(spec.models) - known - {"*"})
        if unknown:
            raise ModelNotFound(f"unknown model(s): {', '.join(unknown)}", param="models")
        expires_at = spec.expires_at
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise InvalidRequest(
                    "expires_at needs a time zone, e.g. 2027-01-01T00:00:00Z", param="expires_at"
                )
            if expires_at <= datetime.now(UTC):
                raise InvalidRequest("expires_at must be in the future", param="expires_at")

        def create() -> tuple[str, KeyRecord]:
            return services.keys.create(
                spec.models,
                expires_at,
                spec.metadata,
                team_id=team_id,
                user_id=spec.user_id,
                rpm_limit=spec.rpm_limit,
                tpm_limit=spec.tpm_limit,
            )

        key, created = await anyio.to_thread.run_sync(create)
        await record(who, "key.create", f"key:{created.id}", _key_detail(created))
        body: dict[str, Any] = {"key": key, **created.public()}
        return JSONResponse(body, status_code=201, headers={"Cache-Control": "no-store"})

    @app.get("/admin/keys")
    async def list_keys(request: Request) -> JSONResponse:
        who = await actor(request)
        team = roles.visible_team(who)
        roles.require(who, "keys:read", team)
        records = await anyio.to_thread.run_sync(services.keys.list, team)
        return JSONResponse({"object": "list", "data": [r.public() for r in records]})

    @app.get("/admin/keys/{key_id}")
    async def get_key(request: Request, key_id: str) -> JSONResponse:
        who = await actor(request)
        return JSONResponse((await key_or_404(who, key_id)).public())

    @app.patch("/admin/keys/{key_id}")
    async def set_key_limits(request: Request, key_id: str, spec: KeyLimits) -> JSONResponse:
        who = await actor(request)
        found = await key_or_404(who, key_id)
        roles.require(who, "keys:write", found.team_id)
        await anyio.to_thread.run_sync(
            services.keys.set_limits, key_id, spec.rpm_limit, spec.tpm_limit
        )
        services.auth.forget(key_id)
        await record(who, "key.limits", f"key:{key_id}", spec.model_dump())
        return JSONResponse((await key_or_404(who, key_id)).public())

    @app.delete("/admin/keys/{key_id}")
    async def revoke_key(request: Request, key_id: str) -> JSONResponse:
        who = await actor(request)
        found = await key_or_404(who, key_id)
        roles.require(who, "keys:write", found.team_id)
        await anyio.to_thread.run_sync(services.keys.revoke, key_id)
        services.auth.forget(key_id)
        await record(who, "key.revoke", f"key:{key_id}", {})
        return JSONResponse({"id": key_id, "revoked": True})

    admin_routes.mount(app, services, actor, record)


def _key_detail(key: KeyRecord) -> dict[str, Any]:
    public = key.public()
    return {k: public[k] for k in ("models", "team_id", "user_id", "rpm_limit", "tpm_limit")}
