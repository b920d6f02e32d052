"""Signing in and out of the dashboard.

    GET  /ui/login           the form: the admin credential or an admin token; "sign in with SSO"
    POST /ui/login           the credential, checked as the admin API checks it, for a session
    GET  /ui/oidc/start      an OpenID Connect sign-in: state, PKCE verifier and nonce stored
                             (any replica may get the callback), then the provider's sign-in
    GET  /ui/oidc/callback   the code for an ID token (with the verifier), the token verified
                             (JWKS, issuer, audience, nonce), its claims mapped to a role
    POST /ui/logout          the session ended server-side, on every replica

The sign-in form has its own CSRF token (a cookie and a field that must match: there is no
session yet); the OpenID Connect state is bound to the browser that started the sign-in by a
cookie. Every sign-in and sign-out is in the audit log, under the identity that signed in.
"""

from __future__ import annotations

import hmac
import secrets
from typing import TYPE_CHECKING

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.api.ui import security
from gateway.errors import AuthenticationFailed, GatewayError
from gateway.governance.audit import Actor
from gateway.governance.oidc import pkce_pair
from gateway.governance.sessions import LOGIN_SECONDS, Session

if TYPE_CHECKING:
    from gateway.api.ui.app import Dashboard

REFUSED = "The credential was not accepted."


def routes(ui: Dashboard) -> list[Route]:
    async def login_form(request: Request) -> Response:
        if await ui.session(request) is not None:
            return RedirectResponse("/ui", status_code=303)
        return login_page(request, 200, None)

    def login_page(request: Request, status: int, error: str | None) -> Response:
        token = secrets.token_urlsafe(24)
        page = ui.render("login.html", status, login_token=token, error=error)
        page.headers.append(
            "set-cookie", security.cookie(security.LOGIN, token, ui.tls(request), LOGIN_SECONDS)
        )
        return page

    async def login(request: Request) -> Response:
        try:
            form = await ui.form(request)
        except GatewayError as exc:
            return login_page(request, exc.http_status, exc.message)
        expected = security.cookies(request.scope).get(security.LOGIN, "")
        sent = form.get("login_token", "")
        if not expected or not hmac.compare_digest(expected.encode(), sent.encode()):
            return login_page(request, 403, "The sign-in form expired; please try again.")
        credential = form.get("credential", "").strip()
        try:
            actor = await ui.context.resolve(f"Bearer {credential}")
        except GatewayError:
            return login_page(request, 401, REFUSED)
        if actor.role not in {"admin", "team_admin", "viewer"}:
            return login_page(request, 403, "This token's role cannot use the dashboard.")
        token_id = actor.name.removeprefix("token:") if actor.name.startswith("token:") else None
        return await signed_in(request, actor, token_id, "credential", redirect=True)

    async def signed_in(
        request: Request, actor: Actor, token_id: str | None, method: str, redirect: bool
    ) -> Response:
        await anyio.to_thread.run_sync(ui.sessions.sweep)  # ended and expired rows go
        secret, _ = await anyio.to_thread.run_sync(ui.sessions.start, actor, token_id)
        await ui.context.record(actor, "ui.login", "ui:session", {"method": method})
        tls = ui.tls(request)
        if redirect:
            response: Response = RedirectResponse("/ui", status_code=303)
        else:
            # After the provider's cross-site redirect a SameSite=Strict cookie is not sent on
            # a redirect that follows it; a page of this site that moves on is same-site.
            response = ui.render("signed_in.html")
        response.headers.append(
            "set-cookie",
            security.cookie(security.session_cookie_name(tls), secret, tls, None),
        )
        response.headers.append("set-cookie", security.cookie(security.LOGIN, "", tls, 0))
        return response

    async def oidc_start(request: Request) -> Response:
        if ui.oidc is None:
            return ui.render(
                "login.html", 404, login_token="", error="Single sign-on is not set up."
            )
        oidc = ui.oidc
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier, challenge = pkce_pair()
        try:
            url = await anyio.to_thread.run_sync(oidc.authorize_url, state, challenge, nonce)
        except GatewayError as exc:
            return login_page(request, 502, exc.message)
        await anyio.to_thread.run_sync(ui.sessions.begin_login, state, verifier, nonce)
        response = RedirectResponse(url, status_code=302)
        response.headers.append(
            "set-cookie",
            security.cookie(security.OIDC_STATE, state, ui.tls(request), LOGIN_SECONDS, lax=True),
        )
        return response

    async def oidc_callback(request: Request) -> Response:
        if ui.oidc is None:
            return login_page(request, 404, "Single sign-on is not set up.")
        oidc = ui.oidc
        params = request.query_params
        state = params.get("state", "")
        bound = security.cookies(request.scope).get(security.OIDC_STATE, "")
        if params.get("error"):
            return login_page(request, 401, "The identity provider did not sign you in.")
        if not state or not bound or not hmac.compare_digest(state.encode(), bound.encode()):
            return login_page(request, 403, "This sign-in was not started in this browser.")
        pending = await anyio.to_thread.run_sync(ui.sessions.finish_login, state)
        code = params.get("code", "")
        if pending is None or not code:
            return login_page(request, 403, "This sign-in expired or was already used.")

        def identify() -> Actor:
            token = oidc.exchange(code, pending.verifier)
            return oidc.actor(oidc.verify(token, nonce=pending.nonce))

        try:
            actor = await anyio.to_thread.run_sync(identify)
        except AuthenticationFailed as exc:
            return login_page(request, 401, exc.message)
        except GatewayError as exc:  # an identity that maps to no role
            return login_page(request, exc.http_status, exc.message)
        response = await signed_in(request, actor, None, "oidc", redirect=False)
        response.headers.append(
            "set-cookie", security.cookie(security.OIDC_STATE, "", ui.tls(request), 0, lax=True)
        )
        return response

    async def logout(request: Request, session: Session, form: dict[str, str]) -> Response:
        secret = security.cookies(request.scope).get(security.session_cookie_name(ui.tls(request)))
        await anyio.to_thread.run_sync(ui.sessions.end, secret)
        await ui.context.record(session.actor, "ui.logout", "ui:session", {})
        response = RedirectResponse("/ui/login", status_code=303)
        tls = ui.tls(request)
        response.headers.append(
            "set-cookie", security.cookie(security.session_cookie_name(tls), "", tls, 0)
        )
        return response

    return [
        Route("/ui/login", login_form, methods=["GET"]),
        Route("/ui/login", login, methods=["POST"]),
        Route("/ui/oidc/start", oidc_start, methods=["GET"]),
        Route("/ui/oidc/callback", oidc_callback, methods=["GET"]),
        Route("/ui/logout", ui.page(logout), methods=["POST"]),
    ]
