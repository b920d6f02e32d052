"""The dashboard's pages and forms, each one a reading or a change through the admin API.

/ui                    overview: requests, errors, spend and tokens per day (SVG), top
                       teams and models this month, integrity, secret backends, deployments
/ui/keys               list, create (the key shown once), change limits and models, block,
                       rotate (the new key shown once), revoke
/ui/teams              teams and users, and creating them
/ui/budgets            budgets with their spend, soft and hard state, and their alerts; create,
                       edit, delete
/ui/tokens             admin tokens: create (shown once), revoke
/ui/spend              the spend explorer: grouped over a date range; .csv of the same rows;
                       a day's records as the admin API's CSV export
/ui/audit              the audit log and whether its hash chain holds
/ui/integrity          the integrity verdict, its findings and the watch
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, get_args
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.api.ui import charts
from gateway.errors import InvalidRequest
from gateway.governance.reports import GroupBy
from gateway.governance.sessions import Session

if TYPE_CHECKING:
    from gateway.api.ui.app import Dashboard

GROUPS: tuple[str, ...] = get_args(GroupBy)
OVERVIEW_DAYS = 30
TOP = 5


def _int(form: dict[str, str], name: str) -> int | None:
    value = form.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise InvalidRequest(f"{name} must be a whole number", param=name)
    return int(value)


def _text(form: dict[str, str], name: str) -> str | None:
    value = form.get(name, "").strip()
    return value or None


def _models(form: dict[str, str]) -> list[str]:
    return [m.strip() for m in form.get("models", "").split(",") if m.strip()]


def _day(value: str | None, default: date) -> date:
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"not a date (YYYY-MM-DD): {value[:40]!r}") from None


def routes(ui: Dashboard) -> list[Route]:
    def done(path: str, notice: str) -> Response:
        return RedirectResponse(f"{path}?ok={notice}", status_code=303)

    def notice(request: Request) -> str | None:
        from gateway.api.ui.app import NOTICES

        return NOTICES.get(request.query_params.get("ok", ""))

    async def changed(session: Session, method: str, path: str, body: Any = None) -> Any:
        answer = await ui.call(session, method, path, body=body)
        if not answer.ok:
            from gateway.api.ui.app import ApiRefused

            raise ApiRefused(answer)
        return answer.json()

    async def team_names(session: Session) -> dict[str, str]:
        teams = (await ui.read(session, "/admin/teams"))["data"]
        return {t["id"]: t["name"] for t in teams}

    # overview

    async def overview(request: Request, session: Session, form: dict[str, str]) -> Response:
        today = datetime.now(UTC).date()
        start = today - timedelta(days=OVERVIEW_DAYS - 1)
        daily = await ui.read(
            session, "/admin/reports/daily", {"start": start.isoformat(), "end": today.isoformat()}
        )
        month = {"start": today.replace(day=1).isoformat(), "end": today.isoformat()}
        by_team = await ui.read(session, "/admin/reports/spend", {"group_by": "team", **month})
        by_model = await ui.read(session, "/admin/reports/spend", {"group_by": "model", **month})
        ready = (await ui.call(session, "GET", "/health/ready")).json() or {}
        names = await team_names(session)
        rows = daily["data"]
        day = [(r["day"][5:], r) for r in rows]
        shown = [
            charts.bars("Requests", [(d, r["requests"]) for d, r in day]),
            charts.bars("Errors", [(d, r["errors"]) for d, r in day]),
            charts.bars("Spend", [(d, float(r["cost_usd"])) for d, r in day], "$"),
            charts.bars("Tokens", [(d, r["tokens"]) for d, r in day]),
        ]
        checks = ready.get("checks", {})
        return ui.render(
            "overview.html",
            signed=ui.signed(session),
            page="overview",
            charts=shown,
            teams=_top(by_team["data"]),
            models=_top(by_model["data"]),
            totals=by_team["totals"],
            ready=ready.get("status"),
            integrity=checks.get("integrity", {}),
            secrets=checks.get("secrets", {}),
            deployments=checks.get("deployments", {}),
            credentials=checks.get("credentials", {}),
            models_served=sorted(ui.context.models()),
            days=OVERVIEW_DAYS,
            team_names=names,
        )

    # keys

    async def keys_page(
        request: Request, session: Session, created: dict[str, Any] | None = None, status: int = 200
    ) -> Response:
        keys = (await ui.read(session, "/admin/keys"))["data"]
        teams = (await ui.read(session, "/admin/teams"))["data"]
        return ui.render(
            "keys.html",
            status,
            signed=ui.signed(session),
            page="keys",
            keys=keys,
            teams=teams,
            team_names={t["id"]: t["name"] for t in teams},
            models=sorted(ui.context.models()),
            created=created,
            notice=notice(request),
        )

    async def keys(request: Request, session: Session, form: dict[str, str]) -> Response:
        return await keys_page(request, session)

    async def create_key(request: Request, session: Session, form: dict[str, str]) -> Response:
        body: dict[str, Any] = {"models": _models(form) or ["*"]}
        for name in ("team_id", "user_id", "key_alias"):
            if _text(form, name):
                body[name] = _text(form, name)
        for name in ("rpm_limit", "tpm_limit", "max_parallel_requests"):
            if _int(form, name) is not None:
                body[name] = _int(form, name)
        created = await changed(session, "POST", "/admin/keys", body)
        return await keys_page(request, session, created, 201)

    async def update_key(request: Request, session: Session, form: dict[str, str]) -> Response:
        key_id = request.path_params["key_id"]
        body = {
            "models": _models(form),
            "key_alias": _text(form, "key_alias"),
            "rpm_limit": _int(form, "rpm_limit"),
            "tpm_limit": _int(form, "tpm_limit"),
            "max_parallel_requests": _int(form, "max_parallel_requests"),
        }
        await changed(session, "PATCH", f"/admin/keys/{key_id}", body)
        return done("/ui/keys", "updated")

    async def key_action(request: Request, session: Session, form: dict[str, str]) -> Response:
        key_id, action = request.path_params["key_id"], request.path_params["action"]
        if action == "revoke":
            await changed(session, "DELETE", f"/admin/keys/{key_id}")
            return done("/ui/keys", "revoked")
        if action in ("block", "unblock"):
            await changed(session, "POST", f"/admin/keys/{key_id}/{action}")
            return done("/ui/keys", f"{action}ed")
        if action == "rotate":
            grace = _int(form, "grace_seconds")
            rotated = await changed(
                session,
                "POST",
                f"/admin/keys/{key_id}/rotate",
                {"grace_seconds": grace if grace is not None else 3600},
            )
            return await keys_page(request, session, rotated)
        raise InvalidRequest(f"unknown action {action[:40]!r}")

    # teams and users

    async def teams(request: Request, session: Session, form: dict[str, str]) -> Response:
        found = (await ui.read(session, "/admin/teams"))["data"]
        users = (await ui.read(session, "/admin/users"))["data"]
        return ui.render(
            "teams.html",
            signed=ui.signed(session),
            page="teams",
            teams=found,
            users=users,
            notice=notice(request),
        )

    async def create_team(request: Request, session: Session, form: dict[str, str]) -> Response:
        body: dict[str, Any] = {"name": form.get("name", "").strip()}
        for name in ("rpm_limit", "tpm_limit", "max_parallel_requests"):
            if _int(form, name) is not None:
                body[name] = _int(form, name)
        await changed(session, "POST", "/admin/teams", body)
        return done("/ui/teams", "created")

    async def create_user(request: Request, session: Session, form: dict[str, str]) -> Response:
        body: dict[str, Any] = {"name": form.get("name", "").strip()}
        if _text(form, "team_id"):
            body["team_id"] = _text(form, "team_id")
        await changed(session, "POST", "/admin/users", body)
        return done("/ui/teams", "created")

    # budgets

    async def budgets(request: Request, session: Session, form: dict[str, str]) -> Response:
        found = (await ui.read(session, "/admin/budgets"))["data"]
        alerts = (await ui.read(session, "/admin/alerts"))["data"][:50]  # newest first
        return ui.render(
            "budgets.html",
            signed=ui.signed(session),
            page="budgets",
            budgets=[_with_share(b) for b in found],
            alerts=alerts,
            notice=notice(request),
        )

    async def create_budget(request: Request, session: Session, form: dict[str, str]) -> Response:
        body: dict[str, Any] = {
            "scope": form.get("scope", ""),
            "scope_id": form.get("scope_id", "").strip(),
            "period": form.get("period", ""),
            "max_usd": form.get("max_usd", "").strip(),
        }
        if _text(form, "soft_usd"):
            body["soft_usd"] = _text(form, "soft_usd")
        await changed(session, "POST", "/admin/budgets", body)
        return done("/ui/budgets", "created")

    async def edit_budget(request: Request, session: Session, form: dict[str, str]) -> Response:
        budget_id = request.path_params["budget_id"]
        if form.get("delete") == "1":
            await changed(session, "DELETE", f"/admin/budgets/{budget_id}")
            return done("/ui/budgets", "deleted")
        body = {"max_usd": form.get("max_usd", "").strip(), "soft_usd": _text(form, "soft_usd")}
        await changed(session, "PATCH", f"/admin/budgets/{budget_id}", body)
        return done("/ui/budgets", "updated")

    # admin tokens

    async def tokens_page(
        request: Request, session: Session, created: dict[str, Any] | None = None, status: int = 200
    ) -> Response:
        found = (await ui.read(session, "/admin/tokens"))["data"]
        teams = (await ui.read(session, "/admin/teams"))["data"]
        return ui.render(
            "tokens.html",
            status,
            signed=ui.signed(session),
            page="tokens",
            tokens=found,
            teams=teams,
            created=created,
            notice=notice(request),
        )

    async def tokens(request: Request, session: Session, form: dict[str, str]) -> Response:
        return await tokens_page(request, session)

    async def create_token(request: Request, session: Session, form: dict[str, str]) -> Response:
        body: dict[str, Any] = {"role": form.get("role", ""), "name": form.get("name", "").strip()}
        if _text(form, "team_id"):
            body["team_id"] = _text(form, "team_id")
        created = await changed(session, "POST", "/admin/tokens", body)
        return await tokens_page(request, session, created, 201)

    async def revoke_token(request: Request, session: Session, form: dict[str, str]) -> Response:
        await changed(session, "DELETE", f"/admin/tokens/{request.path_params['token_id']}")
        return done("/ui/tokens", "token_revoked")

    # spend

    def spend_query(request: Request) -> dict[str, Any]:
        params = request.query_params
        today = datetime.now(UTC).date()
        group = params.get("group_by", "team")
        if group not in GROUPS:
            raise InvalidRequest(f"group_by must be one of {', '.join(GROUPS)}")
        start = _day(params.get("start"), today.replace(day=1))
        end = _day(params.get("end"), today)
        return {
            "group_by": group,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "team_id": params.get("team_id") or None,
        }

    async def spend(request: Request, session: Session, form: dict[str, str]) -> Response:
        query = spend_query(request)
        report = await ui.read(session, "/admin/reports/spend", query)
        return ui.render(
            "spend.html",
            signed=ui.signed(session),
            page="spend",
            report=report,
            query=query,
            groups=GROUPS,
            csv_query=urlencode({k: v for k, v in query.items() if v}),
            team_names=await team_names(session),
        )

    async def spend_csv(request: Request, session: Session, form: dict[str, str]) -> Response:
        query = spend_query(request)
        report = await ui.read(session, "/admin/reports/spend", query)
        group = query["group_by"]
        out = io.StringIO()
        fields = [
            group,
            "requests",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "cost_usd",
        ]
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(fields)
        for row in report["data"]:
            writer.writerow([_cell(row.get(name)) for name in fields])
        name = f"sealgate-spend-by-{group}-{query['start']}-{query['end']}.csv"
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def spend_records(request: Request, session: Session, form: dict[str, str]) -> Response:
        day = _day(request.query_params.get("day"), datetime.now(UTC).date())
        query = {
            "day": day.isoformat(),
            "format": "csv",
            "team_id": request.query_params.get("team_id"),
        }
        answer = await ui.call(session, "GET", "/admin/exports/spend", query)
        if not answer.ok:
            from gateway.api.ui.app import ApiRefused

            raise ApiRefused(answer)
        disposition = answer.headers.get("content-disposition", "attachment")
        return Response(
            answer.body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": disposition},
        )

    # audit and integrity

    async def audit(request: Request, session: Session, form: dict[str, str]) -> Response:
        found = await ui.read(session, "/admin/audit", {"limit": 200})
        return ui.render(
            "audit.html",
            signed=ui.signed(session),
            page="audit",
            entries=found["data"],
            broken=found["chain_broken_at"],
        )

    async def integrity(request: Request, session: Session, form: dict[str, str]) -> Response:
        ready = (await ui.call(session, "GET", "/health/ready")).json() or {}
        state = ui.integrity()
        return ui.render(
            "integrity.html",
            signed=ui.signed(session),
            page="integrity",
            verdict=ready.get("checks", {}).get("integrity", {}),
            findings=state.findings if state is not None else [],
            checked_at=state.checked_at.isoformat() if state is not None else None,
            alarmed_at=state.alarmed_at.isoformat() if state and state.alarmed_at else None,
            watching=state is not None
            and (state.watcher is not None or state.baseline is not None),
            interval=state.interval if state is not None else None,
        )

    page = ui.page
    return [
        Route("/ui", page(overview), methods=["GET"]),
        Route("/ui/keys", page(keys), methods=["GET"]),
        Route("/ui/keys", page(create_key), methods=["POST"]),
        Route("/ui/keys/{key_id}/update", page(update_key), methods=["POST"]),
        Route("/ui/keys/{key_id}/{action}", page(key_action), methods=["POST"]),
        Route("/ui/teams", page(teams), methods=["GET"]),
        Route("/ui/teams", page(create_team), methods=["POST"]),
        Route("/ui/users", page(create_user), methods=["POST"]),
        Route("/ui/budgets", page(budgets), methods=["GET"]),
        Route("/ui/budgets", page(create_budget), methods=["POST"]),
        Route("/ui/budgets/{budget_id}", page(edit_budget), methods=["POST"]),
        Route("/ui/tokens", page(tokens), methods=["GET"]),
        Route("/ui/tokens", page(create_token), methods=["POST"]),
        Route("/ui/tokens/{token_id}/revoke", page(revoke_token), methods=["POST"]),
        Route("/ui/spend", page(spend), methods=["GET"]),
        Route("/ui/spend.csv", page(spend_csv), methods=["GET"]),
        Route("/ui/spend/records.csv", page(spend_records), methods=["GET"]),
        Route("/ui/audit", page(audit), methods=["GET"]),
        Route("/ui/integrity", page(integrity), methods=["GET"]),
    ]


def _top(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (-r["cost_nanos"], -r["requests"]))[:TOP]


def _with_share(budget: dict[str, Any]) -> dict[str, Any]:
    spent, limit = float(budget["spent_usd"]), float(budget["max_usd"])
    state = "hard" if budget["hard_exceeded"] else "soft" if budget["soft_exceeded"] else "ok"
    return {**budget, "share": min(spent, limit), "limit": limit, "state": state}


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (a group named ``=cmd()``...)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
