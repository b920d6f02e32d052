"""Admin API: admin tokens (team admin and viewer roles). Shown once; stored as a hash."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from starlette.responses import JSONResponse

from gateway.api.admin.context import AdminContext, Caller
from gateway.api.admin.fields import Name, Strict
from gateway.errors import InvalidRequest, NotFound
from gateway.governance import roles
from gateway.governance.tenancy import AdminToken


class CreateToken(Strict):
    role: Literal["team_admin", "viewer", "metrics"]
    team_id: str | None = None
    name: Name


def router(ctx: AdminContext) -> APIRouter:
    routes = APIRouter()
    tenancy = ctx.tenancy

    @routes.post("/admin/tokens", status_code=201)
    async def create_token(who: Caller, spec: CreateToken) -> JSONResponse:
        if spec.team_id is not None:
            await ctx.team_or_404(who, spec.team_id)
        roles.require(who, "tokens:write", spec.team_id)
        if spec.role == "team_admin" and spec.team_id is None:
            raise InvalidRequest("a team_admin token needs team_id", param="team_id")
        if spec.role == "metrics" and spec.team_id is not None:
            raise InvalidRequest("a metrics token takes no team_id", param="team_id")
        token, created = await ctx.run(
            tenancy.create_token, spec.role, spec.team_id, spec.name, who.name
        )
        await ctx.record(
            who, "token.create", f"token:{created.id}", {"role": spec.role, "team_id": spec.team_id}
        )
        body = {"token": token, **created.public()}
        return JSONResponse(body, status_code=201, headers={"Cache-Control": "no-store"})

    @routes.get("/admin/tokens")
    async def list_tokens(who: Caller) -> JSONResponse:
        roles.require(who, "tokens:read", None)
        tokens = await ctx.run(tenancy.tokens)
        return JSONResponse({"object": "list", "data": [t.public() for t in tokens]})

    @routes.delete("/admin/tokens/{token_id}")
    async def revoke_token(who: Caller, token_id: str) -> JSONResponse:
        token: AdminToken | None = await ctx.run(tenancy.token, token_id)
        if token is None or roles.hidden(who, "tokens", token.team_id):
            raise NotFound(f"no token with id {token_id!r}", code="token_not_found")
        roles.require(who, "tokens:write", token.team_id)
        await ctx.run(tenancy.revoke_token, token_id)
        await ctx.record(who, "token.revoke", f"token:{token_id}", {})
        return JSONResponse({"id": token_id, "revoked": True})

    return routes
