"""Admin routes for teams, users, budgets, admin tokens, spend reports and the audit log.
Roles are checked with governance/roles.py; every change is audited (see gateway/admin.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio.to_thread
from fastapi import FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from starlette.responses import JSONResponse

from gateway.errors import InvalidRequest, NotFound
from gateway.governance import periods, reports, roles
from gateway.governance.audit import Actor, AuditLog
from gateway.governance.periods import Period
from gateway.governance.pricing import nanos, usd
from gateway.governance.snapshot import spent_since
from gateway.governance.tenancy import AdminToken, Budget, Scope, Team, User
from gateway.store.keys import KeyRecord

if TYPE_CHECKING:
    from gateway.api.app import Services

Limit = Annotated[int, Field(ge=0, le=10**12)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Usd = Annotated[Decimal, Field(ge=0, le=10**9, decimal_places=9)]
SUBJECT_KIND: dict[Scope, roles.Kind] = {"team": "teams", "user": "users", "key": "keys"}
ActorOf = Callable[[Request], Awaitable[Actor]]
Record = Callable[[Actor, str, str, dict[str, Any]], Awaitable[None]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateTeam(_Strict):
    name: Name
    rpm_limit: Limit | None = None
    tpm_limit: Limit | None = None
    metadata: Annotated[dict[str, str | int | float | bool | None], Field(max_length=64)] = {}


class TeamLimits(_Strict):
    rpm_limit: Limit | None = None
    tpm_limit: Limit | None = None


class CreateUser(_Strict):
    name: Name
    team_id: str | None = None


class CreateBudget(_Strict):
    scope: Scope
    scope_id: Annotated[str, Field(min_length=1, max_length=32)]
    period: Period
    max_usd: Usd
    soft_usd: Usd | None = None


class BudgetAmounts(_Strict):
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


class CreateToken(_Strict):
    role: Literal["team_admin", "viewer"]
    team_id: str | None = None
    name: Name


def mount(app: FastAPI, services: Services, actor: ActorOf, record: Record) -> None:
    governance = services.governance
    tenancy = governance.tenancy
    engine = services.engine

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args)

    async def refresh() -> None:
        await run(governance.refresh)

    async def team_or_404(who: Actor, team_id: str, kind: roles.Kind = "teams") -> Team:
        """The team; 404 when it does not exist or ``who`` may not see it as ``kind`` (its
        spend, for reports; roles.hidden)."""
        team: Team | None = await run(tenancy.team, team_id)
        if team is None or roles.hidden(who, kind, team_id):
            raise NotFound(f"no team with id {team_id!r}", code="team_not_found")
        return team

    # -- teams ------------------------------------------------------------------------------
    @app.post("/admin/teams", status_code=201)
    async def create_team(request: Request, spec: CreateTeam) -> JSONResponse:
        who = await actor(request)
        roles.require(who, "teams:write", None)
        team = await run(
            tenancy.create_team, spec.name, spec.rpm_limit, spec.tpm_limit, spec.metadata
        )
        await record(who, "team.create", f"team:{team.id}", spec.model_dump())
        await refresh()
        return JSONResponse(team.public(), status_code=201)

    @app.get("/admin/teams")
    async def list_teams(request: Request) -> JSONResponse:
        who = await actor(request)
        scope = roles.visible_team(who)
        roles.require(who, "teams:read", scope)
        teams = [t for t in await run(tenancy.teams) if scope is None or t.id == scope]
        return JSONResponse({"object": "list", "data": [t.public() for t in teams]})

    @app.get("/admin/teams/{team_id}")
    async def get_team(request: Request, team_id: str) -> JSONResponse:
        who = await actor(request)
        return JSONResponse((await team_or_404(who, team_id)).public())

    @app.patch("/admin/teams/{team_id}")
    async def set_team_limits(request: Request, team_id: str, spec: TeamLimits) -> JSONResponse:
        who = await actor(request)
        await team_or_404(who, team_id)
        roles.require(who, "teams:write", team_id)
        await run(tenancy.set_team_limits, team_id, spec.rpm_limit, spec.tpm_limit)
        await record(who, "team.limits", f"team:{team_id}", spec.model_dump())
        await refresh()
        return JSONResponse((await run(tenancy.team, team_id)).public())

    # -- users ------------------------------------------------------------------------------
    @app.post("/admin/users", status_code=201)
    async def create_user(request: Request, spec: CreateUser) -> JSONResponse:
        who = await actor(request)
        team_id = spec.team_id if spec.team_id is not None else roles.visible_team(who)
        if team_id is not None:
            await team_or_404(who, team_id)
        roles.require(who, "users:write", team_id)
        user = await run(tenancy.create_user, spec.name, team_id)
        await record(who, "user.create", f"user:{user.id}", {"name": spec.name, "team_id": team_id})
        return JSONResponse(user.public(), status_code=201)

    @app.get("/admin/users")
    async def list_users(request: Request) -> JSONResponse:
        who = await actor(request)
        scope = roles.visible_team(who)
        roles.require(who, "users:read", scope)
        users = await run(tenancy.users, scope)
        return JSONResponse({"object": "list", "data": [u.public() for u in users]})

    # -- budgets ----------------------------------------------------------------------------
    async def owner_team(scope: Scope, scope_id: str, who: Actor | None = None) -> str | None:
        """The team a budget's subject belongs to; 404 when the subject does not exist, or when
        ``who`` is given and may not see it (roles.hidden)."""
        team_id: str | None
        if scope == "team":
            found = await run(tenancy.team, scope_id) is not None
            team_id = scope_id
        else:
            lookup = tenancy.user if scope == "user" else services.keys.get
            member: User | KeyRecord | None = await run(lookup, scope_id)
            found = member is not None
            team_id = member.team_id if member is not None else None
        if not found or (who is not None and roles.hidden(who, SUBJECT_KIND[scope], team_id)):
            raise NotFound(f"no {scope} with id {scope_id!r}", code=f"{scope}_not_found")
        return team_id

    async def budget_or_404(who: Actor, budget_id: str) -> tuple[Budget, str | None]:
        """The budget and its subject's team; 404 when it does not exist or ``who`` may not see
        it (roles.hidden)."""
        budget: Budget | None = await run(tenancy.budget, budget_id)
        team_id = await owner_team(budget.scope, budget.scope_id) if budget is not None else None
        if budget is None or roles.hidden(who, "budgets", team_id):
            raise NotFound(f"no budget with id {budget_id!r}", code="budget_not_found")
        return budget, team_id

    def budget_action(scope: str) -> str:
        # A team's own budget is its ceiling, set by the gateway admin; a team admin sets the
        # budgets of the keys and users inside it.
        return "budgets:write" if scope == "team" else "member_budgets:write"

    def amounts(budget: Budget) -> dict[str, str | None]:
        soft = budget.soft_nanos
        return {
            "max_usd": usd(budget.max_nanos),
            "soft_usd": usd(soft) if soft is not None else None,
        }

    def budget_view(budget: Budget, team_id: str | None) -> dict[str, Any]:
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

    @app.post("/admin/budgets", status_code=201)
    async def create_budget(request: Request, spec: CreateBudget) -> JSONResponse:
        who = await actor(request)
        team_id = await owner_team(spec.scope, spec.scope_id, who)
        roles.require(who, budget_action(spec.scope), team_id)
        soft = nanos(spec.soft_usd) if spec.soft_usd is not None else None
        if soft is not None and soft > nanos(spec.max_usd):
            raise InvalidRequest("soft_usd must not be above max_usd", param="soft_usd")
        budget = await run(
            tenancy.create_budget, spec.scope, spec.scope_id, spec.period, nanos(spec.max_usd), soft
        )
        await record(who, "budget.create", f"budget:{budget.id}", spec.model_dump(mode="json"))
        await refresh()
        return JSONResponse(await run(budget_view, budget, team_id), status_code=201)

    @app.get("/admin/budgets")
    async def list_budgets(request: Request) -> JSONResponse:
        who = await actor(request)
        scope = roles.visible_team(who)
        roles.require(who, "budgets:read", scope)
        data = []
        for budget in await run(tenancy.budgets):
            team_id = await owner_team(budget.scope, budget.scope_id)
            if scope is None or team_id == scope:
                data.append(await run(budget_view, budget, team_id))
        return JSONResponse({"object": "list", "data": data})

    @app.patch("/admin/budgets/{budget_id}")
    async def update_budget(request: Request, budget_id: str, spec: BudgetAmounts) -> JSONResponse:
        who = await actor(request)
        budget, team_id = await budget_or_404(who, budget_id)
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
        await run(tenancy.set_budget_amounts, budget_id, max_nanos, soft)
        changed = replace(budget, max_nanos=max_nanos, soft_nanos=soft)
        detail = {"before": amounts(budget), "after": amounts(changed)}
        await record(who, "budget.update", f"budget:{budget_id}", detail)
        await refresh()
        return JSONResponse(await run(budget_view, changed, team_id))

    @app.delete("/admin/budgets/{budget_id}")
    async def delete_budget(request: Request, budget_id: str) -> JSONResponse:
        who = await actor(request)
        budget, team_id = await budget_or_404(who, budget_id)
        roles.require(who, budget_action(budget.scope), team_id)
        await run(tenancy.delete_budget, budget_id)
        await record(who, "budget.delete", f"budget:{budget_id}", {})
        await refresh()
        return JSONResponse({"id": budget_id, "deleted": True})

    # -- admin tokens -----------------------------------------------------------------------
    @app.post("/admin/tokens", status_code=201)
    async def create_token(request: Request, spec: CreateToken) -> JSONResponse:
        who = await actor(request)
        if spec.team_id is not None:
            await team_or_404(who, spec.team_id)
        roles.require(who, "tokens:write", spec.team_id)
        if spec.role == "team_admin" and spec.team_id is None:
            raise InvalidRequest("a team_admin token needs team_id", param="team_id")
        token, created = await run(
            tenancy.create_token, spec.role, spec.team_id, spec.name, who.name
        )
        await record(
            who, "token.create", f"token:{created.id}", {"role": spec.role, "team_id": spec.team_id}
        )
        body = {"token": token, **created.public()}
        return JSONResponse(body, status_code=201, headers={"Cache-Control": "no-store"})

    @app.get("/admin/tokens")
    async def list_tokens(request: Request) -> JSONResponse:
        who = await actor(request)
        roles.require(who, "tokens:read", None)
        tokens = await run(tenancy.tokens)
        return JSONResponse({"object": "list", "data": [t.public() for t in tokens]})

    @app.delete("/admin/tokens/{token_id}")
    async def revoke_token(request: Request, token_id: str) -> JSONResponse:
        who = await actor(request)
        token: AdminToken | None = await run(tenancy.token, token_id)
        if token is None or roles.hidden(who, "tokens", token.team_id):
            raise NotFound(f"no token with id {token_id!r}", code="token_not_found")
        roles.require(who, "tokens:write", token.team_id)
        await run(tenancy.revoke_token, token_id)
        await record(who, "token.revoke", f"token:{token_id}", {})
        return JSONResponse({"id": token_id, "revoked": True})

    # -- reports and audit ------------------------------------------------------------------
    @app.get("/admin/reports/spend")
    async def spend_report(
        request: Request,
        group_by: reports.GroupBy = "key",
        start: date | None = None,
        end: date | None = None,
        team_id: Annotated[str | None, Query(max_length=32)] = None,
    ) -> JSONResponse:
        who = await actor(request)
        if team_id is not None:
            await team_or_404(who, team_id, "reports")
        team = team_id if team_id is not None else roles.visible_team(who)
        roles.require(who, "reports:read", team)
        body = await run(reports.spend_report, engine, group_by, start, end, team)
        return JSONResponse(body)

    audit = AuditLog(engine)

    @app.get("/admin/audit")
    async def audit_entries(
        request: Request, limit: Annotated[int, Query(ge=1, le=10000)] = 1000
    ) -> JSONResponse:
        who = await actor(request)
        roles.require(who, "audit:read", None)
        entries = await run(audit.entries, limit)
        broken = await run(audit.verify)
        return JSONResponse({"object": "list", "data": entries, "chain_broken_at": broken})
