"""Admin API: budgets. USD limits per key, team, user, project or tag and period, with their
spend so far.

A team's own budget is its ceiling, set by the gateway admin; a team admin sets the budgets of
the keys and users inside its team. A project's or a tag's budget (its ``scope_id`` is the
project or tag value) spans every team, so only the gateway admin sets it. What a budget
limits (scope, subject, period) never changes: to change that, delete it and create another.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import Field, ValidationInfo, field_validator
from sqlalchemy import Engine
from starlette.responses import JSONResponse

from gateway.api.admin.context import AdminContext, Caller
from gateway.api.admin.fields import Strict
from gateway.errors import InvalidRequest, NotFound
from gateway.governance import periods, roles
from gateway.governance.audit import Actor
from gateway.governance.periods import Period
from gateway.governance.pricing import nanos, usd
from gateway.governance.snapshot import spent_since
from gateway.governance.tenancy import Budget, Scope, User
from gateway.store.keys import KeyRecord

Usd = Annotated[Decimal, Field(ge=0, le=10**9, decimal_places=9)]
SUBJECT_KIND: dict[Scope, roles.Kind] = {
    "team": "teams",
    "user": "users",
    "key": "keys",
    "project": "budgets",
    "tag": "budgets",
}
GATEWAY_WIDE = ("project", "tag")  # budgets of no team: the subject is a value, not a row


class CreateBudget(Strict):
    scope: Scope
    scope_id: Annotated[str, Field(min_length=1, max_length=32)]
    period: Period
    max_usd: Usd
    soft_usd: Usd | None = None


class BudgetAmounts(Strict):
    """New amounts for a budget; ``soft_usd: null`` removes its soft threshold. What a budget
    limits (scope, subject, period) is what it is: to change that, delete it and create another.
    Those three are named here only so that trying to change one gets a clear answer."""

    max_usd: Usd | None = None
    soft_usd: Usd | None = None
    scope: None = None
    scope_id: None = None
    period: None = None

    @field_validator("scope", "scope_id", "period", mode="before")
    @classmethod
    def _fixed(cls, value: object, info: ValidationInfo) -> None:
        raise ValueError(
            f"a budget's {info.field_name} cannot be changed; "
            "delete the budget and create a new one"
        )

    @field_validator("max_usd")
    @classmethod
    def _hard_limit_stays(cls, value: Decimal | None) -> Decimal:
        if value is None:
            raise ValueError("a budget always has a hard limit; give an amount")
        return value


async def owner_team(
    ctx: AdminContext, scope: Scope, scope_id: str, who: Actor | None = None
) -> str | None:
    """The team a budget's subject belongs to; 404 when the subject does not exist, or when
    ``who`` is given and may not see it (roles.hidden)."""
    team_id: str | None
    if scope in GATEWAY_WIDE:
        found, team_id = True, None
    elif scope == "team":
        found = await ctx.run(ctx.tenancy.team, scope_id) is not None
        team_id = scope_id
    else:
        lookup = ctx.tenancy.user if scope == "user" else ctx.keys.get
        member: User | KeyRecord | None = await ctx.run(lookup, scope_id)
        found = member is not None
        team_id = member.team_id if member is not None else None
    if not found or (who is not None and roles.hidden(who, SUBJECT_KIND[scope], team_id)):
        raise NotFound(f"no {scope} with id {scope_id!r}", code=f"{scope}_not_found")
    return team_id


async def budget_or_404(ctx: AdminContext, who: Actor, budget_id: str) -> tuple[Budget, str | None]:
    """The budget and its subject's team; 404 when it does not exist or ``who`` may not see
    it (roles.hidden)."""
    budget: Budget | None = await ctx.run(ctx.tenancy.budget, budget_id)
    team_id = await owner_team(ctx, budget.scope, budget.scope_id) if budget is not None else None
    if budget is None or roles.hidden(who, "budgets", team_id):
        raise NotFound(f"no budget with id {budget_id!r}", code="budget_not_found")
    return budget, team_id


def budget_action(scope: str) -> str:
    # A team's own budget is its ceiling, set by the gateway admin; a team admin sets the
    # budgets of the keys and users inside it.
    return "budgets:write" if scope in ("team", *GATEWAY_WIDE) else "member_budgets:write"


def amounts(budget: Budget) -> dict[str, str | None]:
    soft = budget.soft_nanos
    return {
        "max_usd": usd(budget.max_nanos),
        "soft_usd": usd(soft) if soft is not None else None,
    }


def budget_view(engine: Engine, budget: Budget, team_id: str | None) -> dict[str, Any]:
    """A budget as the API shows it, with its spend in the current period (reads the spend
    table: call from a worker thread)."""
    now = datetime.now(UTC)
    start, end = periods.window(budget.period, now)
    spent = spent_since(engine, budget.scope, [budget.scope_id], start).get(budget.scope_id, 0)
    soft = budget.soft_nanos
    return {
        "id": budget.id,
        "scope": budget.scope,
        "scope_id": budget.scope_id,
        "team_id": team_id,
        "period": budget.period,
        **amounts(budget),
        "period_start": start.isoformat() if budget.period != "total" else None,
        "period_end": end.isoformat() if budget.period != "total" else None,
        "spent_usd": usd(spent),
        "soft_exceeded": soft is not None and spent >= soft,
        "hard_exceeded": spent >= budget.max_nanos,
    }


def router(ctx: AdminContext) -> APIRouter:
    routes = APIRouter()
    tenancy = ctx.tenancy
    engine = ctx.engine

    @routes.post("/admin/budgets", status_code=201)
    async def create_budget(who: Caller, spec: CreateBudget) -> JSONResponse:
        team_id = await owner_team(ctx, spec.scope, spec.scope_id, who)
        roles.require(who, budget_action(spec.scope), team_id)
        soft = nanos(spec.soft_usd) if spec.soft_usd is not None else None
        if soft is not None and soft > nanos(spec.max_usd):
            raise InvalidRequest("soft_usd must not be above max_usd", param="soft_usd")
        budget = await ctx.run(
            tenancy.create_budget, spec.scope, spec.scope_id, spec.period, nanos(spec.max_usd), soft
        )
        await ctx.record(who, "budget.create", f"budget:{budget.id}", spec.model_dump(mode="json"))
        await ctx.refresh()
        return JSONResponse(await ctx.run(budget_view, engine, budget, team_id), status_code=201)

    @routes.get("/admin/budgets")
    async def list_budgets(who: Caller) -> JSONResponse:
        scope = roles.visible_team(who)
        roles.require(who, "budgets:read", scope)
        data = []
        for budget in await ctx.run(tenancy.budgets):
            team_id = await owner_team(ctx, budget.scope, budget.scope_id)
            if scope is None or team_id == scope:
                data.append(await ctx.run(budget_view, engine, budget, team_id))
        return JSONResponse({"object": "list", "data": data})

    @routes.get("/admin/alerts")
    async def list_alerts(who: Caller) -> JSONResponse:
        """Budget alerts, newest first: each soft threshold and hard limit reached, once per
        budget and period (gateway/governance/alerts.py), with when it was delivered."""
        scope = roles.visible_team(who)
        roles.require(who, "budgets:read", scope)
        data = []
        for alert in await ctx.run(ctx.governance.alerts.list):
            if scope is not None:
                try:
                    team_id = await owner_team(ctx, alert["scope"], alert["scope_id"])
                except NotFound:
                    continue  # its subject is gone: only an unscoped caller sees it
                if team_id != scope:
                    continue
            data.append(alert)
        return JSONResponse({"object": "list", "data": data})

    @routes.patch("/admin/budgets/{budget_id}")
    async def update_budget(who: Caller, budget_id: str, spec: BudgetAmounts) -> JSONResponse:
        budget, team_id = await budget_or_404(ctx, who, budget_id)
        roles.require(who, budget_action(budget.scope), team_id)
        given = spec.model_fields_set
        if not given:
            raise InvalidRequest("nothing to change: give max_usd, soft_usd or both")
        max_nanos = nanos(spec.max_usd) if spec.max_usd is not None else budget.max_nanos
        soft = budget.soft_nanos
        if "soft_usd" in given:
            soft = nanos(spec.soft_usd) if spec.soft_usd is not None else None
        if soft is not None and soft > max_nanos:
            if "soft_usd" in given:
                message = f"soft_usd must not be above max_usd ({usd(max_nanos)})"
                raise InvalidRequest(message, param="soft_usd")
            message = (
                f"max_usd must not be below the budget's soft_usd ({usd(soft)}); "
                "lower soft_usd too, or set it to null"
            )
            raise InvalidRequest(message, param="max_usd")
        await ctx.run(tenancy.set_budget_amounts, budget_id, max_nanos, soft)
        changed = replace(budget, max_nanos=max_nanos, soft_nanos=soft)
        detail = {"before": amounts(budget), "after": amounts(changed)}
        await ctx.record(who, "budget.update", f"budget:{budget_id}", detail)
        await ctx.refresh()
        return JSONResponse(await ctx.run(budget_view, engine, changed, team_id))

    @routes.delete("/admin/budgets/{budget_id}")
    async def delete_budget(who: Caller, budget_id: str) -> JSONResponse:
        budget, team_id = await budget_or_404(ctx, who, budget_id)
        roles.require(who, budget_action(budget.scope), team_id)
        await ctx.run(tenancy.delete_budget, budget_id)
        await ctx.record(who, "budget.delete", f"budget:{budget_id}", {})
        await ctx.refresh()
        return JSONResponse({"id": budget_id, "deleted": True})

    return routes
