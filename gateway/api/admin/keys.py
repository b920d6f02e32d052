"""Admin API: virtual keys. Create (the key is shown once), list, read, change limits, revoke.

A key belongs to a team and a user, or to none; a team admin manages only its team's keys. Every
change is audited (``context.AdminContext.record``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import Field
from starlette.responses import JSONResponse

from gateway.api.admin.context import AdminContext, Caller
from gateway.api.admin.fields import Id, Limit, Limits, Strict
from gateway.errors import InvalidRequest, ModelNotFound, NotFound
from gateway.governance import roles
from gateway.governance.audit import Actor
from gateway.store.keys import KeyRecord

MetadataValue = str | int | float | bool | None | list[str]


class CreateKey(Strict):
    models: Annotated[
        list[Annotated[str, Field(min_length=1)]], Field(min_length=1, max_length=1000)
    ]
    expires_at: datetime | None = None
    metadata: Annotated[dict[str, MetadataValue], Field(max_length=64, default_factory=dict)]
    team_id: Id | None = None
    user_id: Id | None = None
    rpm_limit: Limit | None = None
    tpm_limit: Limit | None = None


def router(ctx: AdminContext) -> APIRouter:
    routes = APIRouter()
    tenancy = ctx.tenancy

    async def key_or_404(who: Actor, key_id: str) -> KeyRecord:
        """The key, or 404 when it does not exist or ``who`` may not see it (roles.hidden)."""
        found = await ctx.run(ctx.keys.get, key_id)
        if found is None or roles.hidden(who, "keys", found.team_id):
            raise NotFound(f"no key with id {key_id!r}", code="key_not_found")
        return found

    @routes.post("/admin/keys", status_code=201)
    async def create_key(who: Caller, spec: CreateKey) -> JSONResponse:
        team_id = spec.team_id if spec.team_id is not None else roles.visible_team(who)
        # Every id given is resolved before the role is checked, so that one out of the caller's
        # sight gets the answer an unknown one gets (roles.hidden).
        if team_id is not None:
            await ctx.team_or_404(who, team_id)
        user = None
        if spec.user_id is not None:
            user = await ctx.run(tenancy.user, spec.user_id)
            if user is None or roles.hidden(who, "users", user.team_id):
                raise NotFound(f"no user with id {spec.user_id!r}", code="user_not_found")
        roles.require(who, "keys:write", team_id)
        if user is not None and user.team_id is not None and user.team_id != team_id:
            raise InvalidRequest("the user belongs to another team", param="user_id")
        known = set(ctx.models())
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
            return ctx.keys.create(
                spec.models,
                expires_at,
                spec.metadata,
                team_id=team_id,
                user_id=spec.user_id,
                rpm_limit=spec.rpm_limit,
                tpm_limit=spec.tpm_limit,
            )

        key, created = await ctx.run(create)
        await ctx.record(who, "key.create", f"key:{created.id}", _key_detail(created))
        body: dict[str, Any] = {"key": key, **created.public()}
        return JSONResponse(body, status_code=201, headers={"Cache-Control": "no-store"})

    @routes.get("/admin/keys")
    async def list_keys(who: Caller) -> JSONResponse:
        team = roles.visible_team(who)
        roles.require(who, "keys:read", team)
        records = await ctx.run(ctx.keys.list, team)
        return JSONResponse({"object": "list", "data": [r.public() for r in records]})

    @routes.get("/admin/keys/{key_id}")
    async def get_key(who: Caller, key_id: str) -> JSONResponse:
        return JSONResponse((await key_or_404(who, key_id)).public())

    @routes.patch("/admin/keys/{key_id}")
    async def set_key_limits(who: Caller, key_id: str, spec: Limits) -> JSONResponse:
        found = await key_or_404(who, key_id)
        roles.require(who, "keys:write", found.team_id)
        await ctx.run(ctx.keys.set_limits, key_id, spec.rpm_limit, spec.tpm_limit)
        ctx.auth.forget(key_id)
        await ctx.record(who, "key.limits", f"key:{key_id}", spec.model_dump())
        return JSONResponse((await key_or_404(who, key_id)).public())

    @routes.delete("/admin/keys/{key_id}")
    async def revoke_key(who: Caller, key_id: str) -> JSONResponse:
        found = await key_or_404(who, key_id)
        roles.require(who, "keys:write", found.team_id)
        await ctx.run(ctx.keys.revoke, key_id)
        ctx.auth.forget(key_id)
        await ctx.record(who, "key.revoke", f"key:{key_id}", {})
        return JSONResponse({"id": key_id, "revoked": True})

    return routes


def _key_detail(key: KeyRecord) -> dict[str, Any]:
    public = key.public()
    detail = {k: public[k] for k in ("models", "team_id", "user_id", "rpm_limit", "tpm_limit")}
    if "guardrail_policy" in key.metadata:  # the key's own guardrail policy (gateway.guardrails)
        detail["guardrail_policy"] = key.metadata["guardrail_policy"]
    return detail
