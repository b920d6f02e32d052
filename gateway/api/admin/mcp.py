"""Admin API: the MCP gateway. The configured servers and what each offers now (with each
tool's digest and whether it is approved, unapproved or changed since approval), approving a
tool at the digest the operator reviewed, withdrawing an approval, and the allowlists of keys
and teams. Gateway admin only (deny by default in ``gateway.governance.roles``); every change
is audited.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import Field
from starlette.responses import JSONResponse

from gateway.api.admin.context import AdminContext, Caller
from gateway.api.admin.fields import Strict
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.governance import roles
from gateway.mcp import grants
from gateway.mcp.aggregator import Aggregator

Digest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Pattern = Annotated[str, Field(min_length=3, max_length=180)]


class Approve(Strict):
    server: Annotated[str, Field(min_length=1, max_length=48)]
    tool: Annotated[str, Field(min_length=1, max_length=128)]
    digest: Digest  # what the operator reviewed: the approval fails if the tool changed since


class Grants(Strict):
    tools: Annotated[list[Pattern], Field(max_length=1000)]  # <server>.<tool> or <server>.*


def router(ctx: AdminContext) -> APIRouter:
    routes = APIRouter()

    def gateway() -> Aggregator:
        if ctx.mcp is None:
            raise NotFound("the MCP gateway is not enabled", code="mcp_not_enabled")
        return ctx.mcp

    def checked(spec: Grants) -> list[str]:
        servers = gateway().upstreams
        for index, pattern in enumerate(spec.tools):
            if not grants.valid(pattern):
                raise InvalidRequest(f"tools.{index}: {grants.PATTERN_HELP}", param="tools")
            if pattern.split(".", 1)[0] not in servers:
                known = ", ".join(sorted(servers)) or "none"
                raise InvalidRequest(
                    f"tools.{index}: names no configured MCP server; known: {known}",
                    param="tools",
                )
        return sorted(set(spec.tools))

    @routes.get("/admin/mcp/servers")
    async def list_servers(who: Caller) -> JSONResponse:
        roles.require(who, "mcp:read", None)
        data = [
            {"name": u.name, "url": u.server.url, "credential": u.server.credential}
            for u in gateway().upstreams.values()
        ]
        return JSONResponse({"object": "list", "data": data})

    @routes.get("/admin/mcp/servers/{server}/tools")
    async def list_tools(who: Caller, server: str) -> JSONResponse:
        roles.require(who, "mcp:read", None)
        offered = await gateway().offered(server)
        return JSONResponse({"object": "list", "data": [o.public() for o in offered]})

    @routes.post("/admin/mcp/approvals", status_code=201)
    async def approve(who: Caller, spec: Approve) -> JSONResponse:
        roles.require(who, "mcp:write", None)
        aggregator = gateway()
        current = {o.tool.name: o for o in await aggregator.offered(spec.server)}
        found = current.get(spec.tool)
        if found is None:
            raise NotFound(f"server {spec.server!r} offers no tool {spec.tool!r}")
        if found.digest != spec.digest:
            raise Conflict(
                f"tool {spec.server}.{spec.tool} now hashes to {found.digest}, not the digest "
                "given: review its current description and input schema, then approve that",
                code="digest_mismatch",
            )
        approval = await ctx.run(
            aggregator.store.approve, spec.server, spec.tool, spec.digest, who.name
        )
        await ctx.record(who, "mcp.approve", f"mcp:{spec.server}.{spec.tool}", spec.model_dump())
        return JSONResponse({"server": spec.server, "tool": spec.tool, **approval.public()}, 201)

    @routes.delete("/admin/mcp/approvals/{server}/{tool}")
    async def withdraw(who: Caller, server: str, tool: str) -> JSONResponse:
        roles.require(who, "mcp:write", None)
        if not await ctx.run(gateway().store.withdraw, server, tool):
            raise NotFound(f"no approval of tool {server}.{tool}")
        await ctx.record(who, "mcp.withdraw", f"mcp:{server}.{tool}", {})
        return JSONResponse({"server": server, "tool": tool, "approved": False})

    @routes.put("/admin/mcp/grants/keys/{key_id}")
    async def grant_key(who: Caller, key_id: str, spec: Grants) -> JSONResponse:
        roles.require(who, "mcp:write", None)
        if await ctx.run(ctx.keys.get, key_id) is None:
            raise NotFound(f"no key with id {key_id!r}", code="key_not_found")
        return await _set(who, grants.key_principal(key_id), checked(spec))

    @routes.put("/admin/mcp/grants/teams/{team_id}")
    async def grant_team(who: Caller, team_id: str, spec: Grants) -> JSONResponse:
        roles.require(who, "mcp:write", None)
        await ctx.team_or_404(who, team_id)
        return await _set(who, grants.team_principal(team_id), checked(spec))

    @routes.get("/admin/mcp/grants")
    async def list_grants(who: Caller) -> JSONResponse:
        roles.require(who, "mcp:read", None)
        snapshot = await ctx.run(gateway().store.load)
        data = [{"principal": p, "tools": sorted(t)} for p, t in sorted(snapshot.grants.items())]
        return JSONResponse({"object": "list", "data": data})

    async def _set(who: Caller, principal: str, tools: list[str]) -> JSONResponse:
        await ctx.run(gateway().store.set_grants, principal, tools, who.name)
        await ctx.record(who, "mcp.grants", principal, {"tools": tools})
        return JSONResponse({"principal": principal, "tools": tools})

    return routes
