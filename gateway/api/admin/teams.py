"""Admin API: teams. Create, list, read, change their request, token and in-flight limits and
their guardrail policy (gateway admin; a team admin and a viewer read their own team).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import Field
from starlette.responses import JSONResponse

from gateway.api.admin.context import AdminContext, Caller
from gateway.api.admin.fields import Limit, Name, Parallel, Strict, TeamLimits
from gateway.governance import roles

GUARDRAIL_POLICY = "guardrail_policy"  # the metadata entry gateway.guardrails reads


class TeamGuardrails(Strict):
    # The name of a policy in the config's (or the signed bundle's) guardrails section, or None
    # to go back to what the config says for the team. A name the gateway does not have is
    # refused on the team's requests (guardrail_policy_unknown), as for a key's own policy.
    policy: Annotated[str, Field(min_length=1, max_length=128)] | None


class CreateTeam(Strict):
    name: Name
    rpm_limit: Limit | None = None
    tpm_limit: Limit | None = None
    max_parallel_requests: Parallel | None = None
    # allowed_projects / allowed_tags (lists) bound what the team's keys may attribute spend to
    metadata: Annotated[
        dict[str, str | int | float | bool | list[str] | None],
        Field(max_length=64, default_factory=dict),
    ]


def router(ctx: AdminContext) -> APIRouter:
    routes = APIRouter()
    tenancy = ctx.tenancy

    @routes.post("/admin/teams", status_code=201)
    async def create_team(who: Caller, spec: CreateTeam) -> JSONResponse:
        roles.require(who, "teams:write", None)
        team = await ctx.run(
            tenancy.create_team,
            spec.name,
            spec.rpm_limit,
            spec.tpm_limit,
            spec.metadata,
            spec.max_parallel_requests,
        )
        await ctx.record(who, "team.create", f"team:{team.id}", spec.model_dump())
        await ctx.refresh()
        return JSONResponse(team.public(), status_code=201)

    @routes.get("/admin/teams")
    async def list_teams(who: Caller) -> JSONResponse:
        scope = roles.visible_team(who)
        roles.require(who, "teams:read", scope)
        teams = [t for t in await ctx.run(tenancy.teams) if scope is None or t.id == scope]
        return JSONResponse({"object": "list", "data": [t.public() for t in teams]})

    @routes.get("/admin/teams/{team_id}")
    async def get_team(who: Caller, team_id: str) -> JSONResponse:
        return JSONResponse((await ctx.team_or_404(who, team_id)).public())

    @routes.patch("/admin/teams/{team_id}")
    async def set_team_limits(who: Caller, team_id: str, spec: TeamLimits) -> JSONResponse:
        await ctx.team_or_404(who, team_id)
        roles.require(who, "teams:write", team_id)
        await ctx.run(lambda: tenancy.set_team_limits(team_id, **spec.named()))
        await ctx.record(who, "team.limits", f"team:{team_id}", spec.named())
        await ctx.refresh()
        return JSONResponse((await ctx.team_or_404(who, team_id)).public())

    @routes.put("/admin/teams/{team_id}/guardrails")
    async def set_team_guardrails(who: Caller, team_id: str, spec: TeamGuardrails) -> JSONResponse:
        await ctx.team_or_404(who, team_id)
        roles.require(who, "teams:write", None)  # the gateway admin: a team does not pick its own
        await ctx.run(tenancy.set_team_metadata, team_id, GUARDRAIL_POLICY, spec.policy)
        await ctx.record(who, "team.guardrails", f"team:{team_id}", {"policy": spec.policy})
        await ctx.refresh()
        return JSONResponse((await ctx.team_or_404(who, team_id)).public())

    return routes
