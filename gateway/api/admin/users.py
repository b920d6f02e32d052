"""Admin API: users. Create, list, change their request and token limits per minute (which hold
across all of a user's keys); a user belongs to one team or to none."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from gateway.api.admin.context import AdminContext, Caller
from gateway.api.admin.fields import Limit, Limits, Name, Strict
from gateway.errors import NotFound
from gateway.governance import roles


class CreateUser(Strict):
    name: Name
    team_id: str | None = None
    rpm_limit: Limit | None = None
    tpm_limit: Limit | None = None


def router(ctx: AdminContext) -> APIRouter:
    routes = APIRouter()
    tenancy = ctx.tenancy

    @routes.post("/admin/users", status_code=201)
    async def create_user(who: Caller, spec: CreateUser) -> JSONResponse:
        team_id = spec.team_id if spec.team_id is not None else roles.visible_team(who)
        if team_id is not None:
            await ctx.team_or_404(who, team_id)
        roles.require(who, "users:write", team_id)
        user = await ctx.run(
            tenancy.create_user, spec.name, team_id, spec.rpm_limit, spec.tpm_limit
        )
        await ctx.record(who, "user.create", f"user:{user.id}", spec.model_dump())
        await ctx.refresh()
        return JSONResponse(user.public(), status_code=201)

    @routes.patch("/admin/users/{user_id}")
    async def set_user_limits(who: Caller, user_id: str, spec: Limits) -> JSONResponse:
        user = await ctx.run(tenancy.user, user_id)
        if user is None or roles.hidden(who, "users", user.team_id):
            raise NotFound(f"no user with id {user_id!r}", code="user_not_found")
        roles.require(who, "users:write", user.team_id)
        await ctx.run(lambda: tenancy.set_user_limits(user_id, **spec.named()))
        await ctx.record(who, "user.limits", f"user:{user_id}", spec.named())
        await ctx.refresh()
        changed = await ctx.run(tenancy.user, user_id)
        assert changed is not None
        return JSONResponse(changed.public())

    @routes.get("/admin/users")
    async def list_users(who: Caller) -> JSONResponse:
        scope = roles.visible_team(who)
        roles.require(who, "users:read", scope)
        users = await ctx.run(tenancy.users, scope)
        return JSONResponse({"object": "list", "data": [u.public() for u in users]})

    return routes
