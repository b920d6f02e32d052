"""Admin API: virtual keys. Create (the key is shown once), list, read, change in place, block
and unblock, rotate with a grace period (the new key is shown once), revoke.

A key belongs to a team and a user, or to none; a team admin manages only its team's keys. Every
change is audited (``context.AdminContext.record``) and applies at once on the replica that made
it (its cached row is dropped); another replica sees it within ``server.auth_cache_seconds``.
A rotation's grace period is at least that long, so that every replica has read the row, and
with it the stored end of the grace, before the old key stops: it then stops everywhere at once.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import Field
from starlette.responses import JSONResponse

from gateway.api.admin.context import AdminContext, Caller
from gateway.api.admin.fields import Id, Limit, Parallel, Strict
from gateway.errors import Conflict, InvalidRequest, ModelNotFound, NotFound
from gateway.governance import roles
from gateway.governance.audit import Actor
from gateway.store.keys import AliasTaken, KeyRecord

MetadataValue = str | int | float | bool | None | list[str]
Models = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1, max_length=1000)]
Metadata = Annotated[dict[str, MetadataValue], Field(max_length=64)]
Alias = Annotated[str, Field(min_length=1, max_length=200)]
MAX_GRACE_SECONDS = 30 * 86400


class CreateKey(Strict):
    models: Models
    expires_at: datetime | None = None
    metadata: Annotated[Metadata, Field(default_factory=dict)]
    team_id: Id | None = None
    user_id: Id | None = None
    rpm_limit: Limit | None = None
    tpm_limit: Limit | None = None
    key_alias: Alias | None = None
    max_parallel_requests: Parallel | None = None


class UpdateKey(Strict):
    """A PATCH of a key: only the fields named change; null clears an alias or a limit."""

    models: Models | None = None
    metadata: Metadata | None = None
    key_alias: Alias | None = None
    rpm_limit: Limit | None = None
    tpm_limit: Limit | None = None
    max_parallel_requests: Parallel | None = None


class RotateKey(Strict):
    grace_seconds: Annotated[float, Field(ge=0, le=MAX_GRACE_SECONDS)]


def router(ctx: AdminContext) -> APIRouter:
    routes = APIRouter()
    tenancy = ctx.tenancy

    def known_models(models: list[str]) -> None:
        known = set(ctx.models())
        wildcards = [name[:-1] for name in known if name.endswith("*")]  # issue 14
        unknown = sorted(
            m
            for m in set(models) - known - {"*"}
            if not any(m.startswith(prefix) for prefix in wildcards)
        )
        if unknown:
            raise ModelNotFound(f"unknown model(s): {', '.join(unknown)}", param="models")

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
        known_models(spec.models)
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
                key_alias=spec.key_alias,
                max_parallel_requests=spec.max_parallel_requests,
            )

        try:
            key, created = await ctx.run(create)
        except AliasTaken:
            raise alias_taken(spec.key_alias) from None
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
    async def update_key(who: Caller, key_id: str, spec: UpdateKey) -> JSONResponse:
        found = await key_or_404(who, key_id)
        roles.require(who, "keys:write", found.team_id)
        changes = {name: getattr(spec, name) for name in spec.model_fields_set}
        if not changes:
            raise InvalidRequest("nothing to change: name at least one field")
        for name in ("models", "metadata"):
            if name in changes and changes[name] is None:
                raise InvalidRequest(f"{name} cannot be null", param=name)
        if "models" in changes:
            known_models(changes["models"])
        try:
            await ctx.run(lambda: ctx.keys.update(key_id, **changes))
        except AliasTaken:
            raise alias_taken(changes["key_alias"]) from None
        ctx.auth.forget(key_id)
        detail = {k: v for k, v in changes.items() if k != "metadata"}
        if "metadata" in changes:
            detail["metadata_keys"] = sorted(changes["metadata"])
        await ctx.record(who, "key.update", f"key:{key_id}", detail)
        return JSONResponse((await key_or_404(who, key_id)).public())

    async def set_blocked(who: Actor, key_id: str, blocked: bool) -> JSONResponse:
        found = await key_or_404(who, key_id)
        roles.require(who, "keys:write", found.team_id)
        await ctx.run(ctx.keys.set_blocked, key_id, blocked)
        ctx.auth.forget(key_id)
        await ctx.record(who, "key.block" if blocked else "key.unblock", f"key:{key_id}", {})
        return JSONResponse((await key_or_404(who, key_id)).public())

    @routes.post("/admin/keys/{key_id}/block")
    async def block_key(who: Caller, key_id: str) -> JSONResponse:
        return await set_blocked(who, key_id, True)

    @routes.post("/admin/keys/{key_id}/unblock")
    async def unblock_key(who: Caller, key_id: str) -> JSONResponse:
        return await set_blocked(who, key_id, False)

    @routes.post("/admin/keys/{key_id}/rotate")
    async def rotate_key(who: Caller, key_id: str, spec: RotateKey) -> JSONResponse:
        found = await key_or_404(who, key_id)
        roles.require(who, "keys:write", found.team_id)
        if spec.grace_seconds < ctx.auth.ttl:
            raise InvalidRequest(
                f"grace_seconds must be at least server.auth_cache_seconds ({ctx.auth.ttl:g}), "
                "so that every replica sees the end of the grace period before it comes; to "
                "stop a key at once, revoke or block it",
                param="grace_seconds",
            )
        grace_ends = datetime.now(UTC) + timedelta(seconds=math.ceil(spec.grace_seconds))
        key = await ctx.run(ctx.keys.rotate, key_id, grace_ends)
        if key is None:
            raise InvalidRequest("a revoked key cannot be rotated", code="key_revoked")
        ctx.auth.forget(key_id)
        await ctx.record(
            who, "key.rotate", f"key:{key_id}", {"previous_key_expires_at": grace_ends.isoformat()}
        )
        rotated = await key_or_404(who, key_id)
        body: dict[str, Any] = {"key": key, **rotated.public()}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @routes.delete("/admin/keys/{key_id}")
    async def revoke_key(who: Caller, key_id: str) -> JSONResponse:
        found = await key_or_404(who, key_id)
        roles.require(who, "keys:write", found.team_id)
        await ctx.run(ctx.keys.revoke, key_id)
        ctx.auth.forget(key_id)
        await ctx.record(who, "key.revoke", f"key:{key_id}", {})
        return JSONResponse({"id": key_id, "revoked": True})

    return routes


def alias_taken(alias: str | None) -> Conflict:
    return Conflict(f"another key already has the alias {alias!r}", code="key_alias_taken")


def _key_detail(key: KeyRecord) -> dict[str, Any]:
    public = key.public()
    fields = (
        "models",
        "team_id",
        "user_id",
        "rpm_limit",
        "tpm_limit",
        "max_parallel_requests",
        "key_alias",
    )
    detail = {k: public[k] for k in fields}
    if "guardrail_policy" in key.metadata:  # the key's own guardrail policy (gateway.guardrails)
        detail["guardrail_policy"] = key.metadata["guardrail_policy"]
    return detail
