"""Admin API: the request and token limits per minute of a project or a tag.

A project or a tag spans every team, so only the gateway admin sets its limits (as for its
budgets); an unscoped viewer reads them. A limit set here overrides the config's
``governance.projects.<name>`` / ``governance.tags.<name>`` entry of the same name on every
replica (at once on the one that served the change, within ``refresh_seconds`` on the others);
deleting it brings the config's back. The list shows both, each with its source.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.responses import JSONResponse, Response

from gateway.api.admin.context import AdminContext, Caller
from gateway.api.admin.fields import Limit, Strict
from gateway.errors import NotFound
from gateway.governance import roles
from gateway.governance.core import MAX_PROJECT, MAX_TAG
from gateway.governance.tenancy import LimitScope

Value = Annotated[str, Path(min_length=1, max_length=MAX_PROJECT, pattern=r"^[^,\s](.*\S)?$")]


class ScopeLimitsBody(Strict):
    """The whole of a project's or tag's limits: a field left out or null is no limit."""

    rpm_limit: Limit | None = None
    tpm_limit: Limit | None = None


def router(ctx: AdminContext) -> APIRouter:
    routes = APIRouter()
    tenancy = ctx.tenancy

    def check(scope: LimitScope, value: str) -> None:
        if scope == "tag" and len(value) > MAX_TAG:
            raise NotFound(f"a tag is at most {MAX_TAG} characters", code="limit_not_found")

    @routes.get("/admin/limits")
    async def list_limits(who: Caller) -> JSONResponse:
        roles.require(who, "budgets:read", None)
        stored = await ctx.run(tenancy.scope_limits)
        overridden = {(s.scope, s.scope_id) for s in stored}
        data: list[dict[str, Any]] = [s.public() for s in stored]
        settings = ctx.governance.settings
        configured = [("project", settings.projects), ("tag", settings.tags)]
        for scope, entries in configured:
            for name, limits in sorted(entries.items()):
                if (scope, name) in overridden:
                    continue
                data.append(
                    {
                        "scope": scope,
                        "scope_id": name,
                        "rpm_limit": limits.rpm,
                        "tpm_limit": limits.tpm,
                        "source": "config",
                    }
                )
        data.sort(key=lambda row: (row["scope"], row["scope_id"]))
        return JSONResponse({"object": "list", "data": data})

    @routes.put("/admin/limits/{scope}/{value}")
    async def set_limits(
        who: Caller, scope: LimitScope, value: Value, spec: ScopeLimitsBody
    ) -> JSONResponse:
        roles.require(who, "limits:write", None)
        check(scope, value)
        limit = await ctx.run(
            tenancy.set_scope_limits, scope, value, spec.rpm_limit, spec.tpm_limit, who.name
        )
        await ctx.record(who, "limits.set", f"{scope}:{value}", spec.model_dump())
        await ctx.refresh()
        return JSONResponse(limit.public())

    @routes.delete("/admin/limits/{scope}/{value}", status_code=204)
    async def delete_limits(who: Caller, scope: LimitScope, value: Value) -> Response:
        roles.require(who, "limits:write", None)
        check(scope, value)
        if not await ctx.run(tenancy.delete_scope_limits, scope, value):
            raise NotFound(
                f"no limits were set through the admin API for {scope} {value!r}",
                code="limit_not_found",
            )
        await ctx.record(who, "limits.delete", f"{scope}:{value}", {})
        await ctx.refresh()
        return Response(status_code=204)

    return routes
