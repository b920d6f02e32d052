"""What every dashboard response carries and every dashboard request is held to.

headers   a strict Content-Security-Policy (only this origin's own script and style; no
          inline script, no eval, no plugins, no framing, forms only to this origin),
          Referrer-Policy no-referrer, X-Content-Type-Options nosniff, X-Frame-Options DENY,
          Cache-Control no-store (pages show keys once, spend and the audit log), and a
          Cross-Origin-Opener-Policy; set on every response under /ui, errors included
cookies   HttpOnly, SameSite=Strict, Path=/ui, Secure when the request came over TLS (or
          always, with ``ui.secure_cookies``); over TLS the name has the __Host- prefix...
          which needs Path=/, so there the path is /
forms     read as application/x-www-form-urlencoded, capped, every field once
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import InvalidRequest

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
HEADERS = {
    "content-security-policy": CSP,
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), clipboard-write=(self)",
    "cache-control": "no-store",
}
SESSION = "sg_session"
SESSION_TLS = "__Host-sg_session"
LOGIN = "sg_login"  # the sign-in form's own CSRF token (double submit), before any session
OIDC_STATE = "sg_oidc"  # binds an OpenID Connect callback to the browser that started it
MAX_FORM_BYTES = 64 * 1024
MAX_FIELDS = 200


class SecurityHeaders:
    """Sets HEADERS on every response of the app it wraps (what the app set for one of them,
    e.g. a CSV's cache-control, is replaced: the policy is the same for every response)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


def over_tls(scope: Scope, always: bool) -> bool:
    return always or scope.get("scheme") == "https"


def session_cookie_name(tls: bool) -> str:
    return SESSION_TLS if tls else SESSION


def cookie(name: str, value: str, tls: bool, max_age: int | None, lax: bool = False) -> str:
    """A Set-Cookie value: HttpOnly always; SameSite=Strict (Lax only for the OpenID Connect
    state, which must come back on the provider's cross-site redirect); Secure over TLS."""
    parts = [f"{name}={value}", "HttpOnly", f"SameSite={'Lax' if lax else 'Strict'}"]
    parts.append("Path=/" if name.startswith("__Host-") else "Path=/ui")
    if tls:
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)


def cookies(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, val = part.strip().partition("=")
                if key and key not in found:
                    found[key] = val
    return found


def parse_form(body: bytes, content_type: str | None) -> dict[str, str]:
    if len(body) > MAX_FORM_BYTES:
        raise InvalidRequest("the form is too large")
    if body and (content_type or "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise InvalidRequest("a form must be sent as application/x-www-form-urlencoded")
    try:
        pairs: Iterable[tuple[str, str]] = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the form could not be read") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise InvalidRequest(f"the field {name!r} was sent twice")
        form[name] = value
    return form
