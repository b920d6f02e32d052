"""Admin API: users. Create and list; a user belongs to one team or to none."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from gateway.api.admin.context import AdminContext, Caller
from gateway.api.admin.fields import Name, Strict
from gateway.governance import roles


class CreateUser(Strict):
    name: Name
    team_id: str | None = None


def router(ctx: AdminContext) -> APIRouter:
    routes = APIRouter()
    tenancy = ctx.tenancy

    @routes.post("/admin/users", status_code=201)
    async def create_user(who: Caller, spec: CreateUser) -> JSONResponse:
        team_id = spec.team_id if spec.team_id is not None else roles.visible_team(who)
        if team_id is not None:
            await ctx.team_or_404(who, team_id)
        roles.require(who, "users:write", team_id)
        user = await ctx.run(tenancy.create_user, spec.name, team_id)
        await ctx.record(
            who, "user.create", f"user:{user.id}", {"name": spec.name, "team_id": team_id}
        )
        return JSONResponse(user.public(), status_code=201)

    @routes.get("/admin/users")
    async def list_users(who: Caller) -> JSONResponse:
        scope = roles.visible_team(who)
        roles.require(who, "users:read", scope)
        users = await ctx.run(tenancy.users, scope)
        return JSONResponse({"object": "list", "data": [u.public() for u in users]})

    return routes
