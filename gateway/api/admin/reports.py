"""Admin API: spend reports, spend logs (the records, paged), daily spend exports (CSV, JSON
Lines) and the audit log (with the state of its hash chain)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import JSONResponse, StreamingResponse

from gateway.api.admin.context import AdminContext, Caller
from gateway.errors import InvalidRequest
from gateway.governance import exports, reports, roles

MAX_DAILY_DAYS = 366


def router(ctx: AdminContext) -> APIRouter:
    routes = APIRouter()
    engine = ctx.engine

    @routes.get("/admin/reports/spend")
    async def spend_report(
        who: Caller,
        group_by: reports.GroupBy = "key",
        start: date | None = None,
        end: date | None = None,
        team_id: Annotated[str | None, Query(max_length=32)] = None,
    ) -> JSONResponse:
        if team_id is not None:
            await ctx.team_or_404(who, team_id, "reports")
        team = team_id if team_id is not None else roles.visible_team(who)
        roles.require(who, "reports:read", team)
        body = await ctx.run(reports.spend_report, engine, group_by, start, end, team)
        return JSONResponse(body)

    @routes.get("/admin/reports/daily")
    async def daily_report(
        who: Caller,
        start: date,
        end: date,
        team_id: Annotated[str | None, Query(max_length=32)] = None,
    ) -> JSONResponse:
        """Requests, errors, tokens and spend per day, from ``start`` to ``end`` (at most
        MAX_DAILY_DAYS days), for one team or (the admin, an unscoped viewer) all."""
        if not timedelta(0) <= end - start < timedelta(days=MAX_DAILY_DAYS):
            raise InvalidRequest(
                f"end must be on or after start, and at most {MAX_DAILY_DAYS} days later",
                param="end",
            )
        if team_id is not None:
            await ctx.team_or_404(who, team_id, "reports")
        team = team_id if team_id is not None else roles.visible_team(who)
        roles.require(who, "reports:read", team)
        rows = await ctx.run(reports.daily, engine, start, end, team)
        return JSONResponse({"object": "list", "team_id": team, "data": rows})

    @routes.get("/admin/spend/logs")
    async def spend_logs(
        who: Caller,
        key_id: Annotated[str | None, Query(max_length=32)] = None,
        team_id: Annotated[str | None, Query(max_length=32)] = None,
        user_id: Annotated[str | None, Query(max_length=32)] = None,
        project: Annotated[str | None, Query(max_length=128)] = None,
        model: Annotated[str | None, Query(max_length=200)] = None,
        status: Annotated[str | None, Query(max_length=64)] = None,
        start: datetime | None = None,
        end: datetime | None = None,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> JSONResponse:
        """Spend records, newest first; a team-scoped caller sees its team's only (another
        team's id answers as an unknown one)."""
        if team_id is not None:
            await ctx.team_or_404(who, team_id, "reports")
        team = team_id if team_id is not None else roles.visible_team(who)
        roles.require(who, "reports:read", team)
        where = reports.LogFilter(key_id, team, user_id, project, model, status, start, end)
        body = await ctx.run(reports.spend_logs, engine, where, limit, cursor)
        return JSONResponse(body)

    @routes.get("/admin/exports/spend")
    async def spend_export(
        who: Caller,
        day: date,
        format: exports.Format = "csv",
        team_id: Annotated[str | None, Query(max_length=32)] = None,
    ) -> StreamingResponse:
        """Every spend record of ``day`` (UTC) for one team (a scoped role: its own), or for all
        teams (the admin and an unscoped viewer), as CSV or JSON Lines."""
        if team_id is not None:
            await ctx.team_or_404(who, team_id, "reports")
        team = team_id if team_id is not None else roles.visible_team(who)
        roles.require(who, "reports:read", team)
        name = f"sealgate-spend-{day.isoformat()}{'-' + team if team else ''}.{format}"
        return StreamingResponse(
            exports.lines(exports.records(engine, day, team), format),
            media_type=exports.MEDIA_TYPES[format],
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @routes.get("/admin/audit")
    async def audit_entries(
        who: Caller, limit: Annotated[int, Query(ge=1, le=10000)] = 1000
    ) -> JSONResponse:
        roles.require(who, "audit:read", None)
        entries = await ctx.run(ctx.audit.entries, limit)
        broken = await ctx.run(ctx.audit.verify)
        return JSONResponse({"object": "list", "data": entries, "chain_broken_at": broken})

    return routes
