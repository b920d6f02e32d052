"""The dashboard's assembly: who is signed in, the CSRF check, templates, and the routes.

Every page and form goes through ``Dashboard.page``: the session from its cookie (else a GET goes
to the sign-in page and anything else is refused), then for every request that is not a GET the
form's CSRF token against the session's. What a page shows and what a form changes is done by
the admin API itself (``through.AdminApi``), as the signed-in identity.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import anyio.to_thread
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from gateway.api.admin.context import AdminContext
from gateway.api.asgi import read_body
from gateway.api.ui import security
from gateway.api.ui.through import AdminApi, Answer
from gateway.config.ui import Ui
from gateway.errors import GatewayError, PermissionDenied
from gateway.governance import roles
from gateway.governance.audit import Actor
from gateway.governance.sessions import Session, Sessions

STATIC = {
    "ui.js": "text/javascript; charset=utf-8",
    "ui.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
ROLES = frozenset({"admin", "team_admin", "viewer"})  # who may sign in (not a metrics token)
NOTICES = {  # what a redirect after a change may say: fixed texts, chosen by a code
    "revoked": "The key was revoked.",
    "updated": "Saved.",
    "blocked": "The key was blocked.",
    "unblocked": "The key was unblocked.",
    "created": "Created.",
    "deleted": "Deleted.",
    "token_revoked": "The admin token was revoked.",
}
Handler = Callable[[Request, Session, dict[str, str]], Awaitable[Response]]


class CsrfRefused(PermissionDenied):
    """A state-changing request without this session's CSRF token."""


@dataclass
class Signed:
    """The identity a page is rendered for, and what it may do (for showing controls only: the
    admin API decides)."""

    actor: Actor
    csrf: str

    def can(self, action: str, team_id: str | None = None) -> bool:
        return roles.allowed(self.actor, action, team_id)


class Dashboard:
    def __init__(
        self,
        settings: Ui,
        api: ASGIApp,
        context: AdminContext,
        sessions: Sessions,
        integrity: Callable[[], Any],
    ) -> None:
        self.settings = settings
        self.api = AdminApi(api)
        self.context = context
        self.sessions = sessions
        self.integrity = integrity
        self.oidc = context.oidc
        self.templates = Environment(
            loader=PackageLoader("gateway.api.ui", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
        )
        folder = resources.files("gateway.api.ui") / "static"
        self.static = {name: (folder / name).read_bytes() for name in STATIC}
        from gateway.api.ui import pages, signin  # the routes, over this assembly

        routes = [
            Route("/ui/static/{name}", self.asset, methods=["GET"]),
            *signin.routes(self),
            *pages.routes(self),
        ]
        self.app: ASGIApp = security.SecurityHeaders(Starlette(routes=routes))

    # serving

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(self.static[name], media_type=STATIC[name])

    def tls(self, request: Request) -> bool:
        return security.over_tls(request.scope, self.settings.secure_cookies)

    def render(
        self, name: str, status: int = 200, signed: Signed | None = None, **values: Any
    ) -> HTMLResponse:
        values.setdefault("error", None)
        values.setdefault("page", None)
        values.setdefault("notice", None)
        html = self.templates.get_template(name).render(
            signed=signed, sso=self.oidc is not None, **values
        )
        return HTMLResponse(html, status_code=status)

    async def session(self, request: Request) -> Session | None:
        secret = security.cookies(request.scope).get(
            security.session_cookie_name(self.tls(request))
        )
        if not secret:
            return None
        tenancy = self.context.tenancy

        def live() -> Session | None:
            found = self.sessions.lookup(secret)
            if found is not None and found.token_id is not None:
                token = tenancy.token(found.token_id)  # a revoked token ends its sessions
                if token is None or token.revoked_at is not None:
                    self.sessions.end(secret)
                    return None
            return found

        return await anyio.to_thread.run_sync(live)

    async def form(self, request: Request) -> dict[str, str]:
        headers = dict(request.scope["headers"])
        body = await read_body(request.receive, headers, security.MAX_FORM_BYTES)
        return security.parse_form(body, request.headers.get("content-type"))

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A route for signed-in identities only, CSRF-checked unless it is a GET."""

        async def endpoint(request: Request) -> Response:
            session = await self.session(request)
            if session is None:
                if request.method == "GET":
                    return RedirectResponse("/ui/login", status_code=303)
                return self.render("login.html", 401, login_token="", error="Please sign in.")
            signed = Signed(session.actor, session.csrf)
            form: dict[str, str] = {}
            try:
                if request.method != "GET":
                    form = await self.form(request)
                    if not session.csrf_matches(form.get("csrf")):
                        raise CsrfRefused(
                            "this form is not from this session (CSRF token missing or wrong); "
                            "reload the page and try again",
                            code="csrf_refused",
                        )
                return await handler(request, session, form)
            except GatewayError as exc:
                return self.render("error.html", exc.http_status, signed, error=exc.message)

        return endpoint

    async def call(
        self,
        session: Session,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Answer:
        return await self.api.call(session.actor, method, path, query, body)

    async def read(self, session: Session, path: str, query: dict[str, Any] | None = None) -> Any:
        """A GET of the admin API as the session's identity; its error as a GatewayError."""
        answer = await self.call(session, "GET", path, query)
        if not answer.ok:
            raise ApiRefused(answer)
        return answer.json()

    def signed(self, session: Session) -> Signed:
        return Signed(session.actor, session.csrf)


class ApiRefused(GatewayError):
    """The admin API's refusal, shown on the page with its status and message."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.error())
        self.answer = answer

    @property
    def http_status(self) -> int:
        return self.answer.status
