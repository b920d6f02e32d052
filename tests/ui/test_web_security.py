"""The dashboard's web security over real HTTP to a real gateway: the security headers on every
response under /ui (pages, assets, redirects, refusals, CSV, the sign-in page), the cookies'
attributes, CSRF refusal of every state-changing route, escaping, and the dashboard off unless
configured."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.api.ui import security
from tests.governance import gateways
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess
from tests.ui.conftest import running

EXPECTED = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


def assert_secure_headers(response: httpx.Response) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (response.url, name, response.headers)
    policy = response.headers["content-security-policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


OPEN: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().close()


def client_of(gateway: GatewayProcess) -> httpx.Client:
    client = httpx.Client(base_url=gateway.url, timeout=10)
    OPEN.append(client)
    return client


def signed_in(gateway: GatewayProcess, credential: str) -> httpx.Client:
    client = client_of(gateway)
    page = client.get("/ui/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert token is not None
    answer = client.post("/ui/login", data={"login_token": token[1], "credential": credential})
    assert answer.status_code == 303, answer.text
    return client


def csrf_of(client: httpx.Client) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/keys").text)
    assert found is not None
    return found[1]


def set_cookies(response: httpx.Response) -> dict[str, str]:
    return {c.split("=", 1)[0]: c for c in response.headers.get_list("set-cookie")}


GETS = [
    "/ui",
    "/ui/keys",
    "/ui/teams",
    "/ui/budgets",
    "/ui/tokens",
    "/ui/spend",
    "/ui/spend?group_by=day",
    "/ui/spend.csv?group_by=model",
    "/ui/spend/records.csv",
    "/ui/audit",
    "/ui/integrity",
    "/ui/static/ui.js",
    "/ui/static/ui.css",
    "/ui/static/missing.js",
    "/ui/no-such-page",
    "/ui/spend?start=not-a-date",
]


def test_every_dashboard_response_carries_the_security_headers(
    gateway: GatewayProcess, world: dict[str, Any]
) -> None:
    anonymous = client_of(gateway)
    for path in ["/ui/login", "/ui", "/ui/keys", "/ui/oidc/start", "/ui/oidc/callback"]:
        assert_secure_headers(anonymous.get(path))
    assert_secure_headers(anonymous.post("/ui/login", data={"credential": "x"}))
    assert_secure_headers(anonymous.post("/ui/keys", data={"models": "*"}))
    client = signed_in(gateway, gateway.admin_key)
    for path in GETS:
        assert_secure_headers(client.get(path))
    csrf = csrf_of(client)
    assert_secure_headers(client.post("/ui/keys", data={"csrf": "wrong"}))
    assert_secure_headers(client.post("/ui/keys", data={"csrf": csrf, "models": "no-such"}))
    assert_secure_headers(
        client.post(
            "/ui/teams", data={"csrf": csrf, "name": "headers-team"}, follow_redirects=False
        )
    )
    assert_secure_headers(client.post("/ui/logout", data={"csrf": csrf}))


def test_the_session_cookie_is_httponly_samesite_strict_and_not_secure_over_plain_http(
    gateway: GatewayProcess,
) -> None:
    client = client_of(gateway)
    page = client.get("/ui/login")
    login_cookie = set_cookies(page)["sg_login"]
    assert "HttpOnly" in login_cookie and "SameSite=Strict" in login_cookie
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert token is not None
    answer = client.post(
        "/ui/login", data={"login_token": token[1], "credential": gateway.admin_key}
    )
    cookie = set_cookies(answer)["sg_session"]
    attributes = [part.strip() for part in cookie.split(";")]
    assert "HttpOnly" in attributes and "SameSite=Strict" in attributes and "Path=/ui" in attributes
    assert "Secure" not in attributes  # plain HTTP on loopback: a Secure cookie would be dropped
    assert not any(
        a.startswith(("Max-Age", "Expires")) for a in attributes
    )  # ends with the browser
    secret = attributes[0].split("=", 1)[1]
    assert len(secret) >= 43
    assert secret not in gateway.stderr()


def test_over_tls_the_cookie_is_secure_and_host_prefixed() -> None:
    name = security.session_cookie_name(tls=True)
    cookie = security.cookie(name, "v", tls=True, max_age=None)
    assert name == "__Host-sg_session"
    assert cookie == "__Host-sg_session=v; HttpOnly; SameSite=Strict; Path=/; Secure"
    assert security.over_tls({"scheme": "https"}, always=False)
    assert security.over_tls({"scheme": "http"}, always=True)
    assert not security.over_tls({"scheme": "http"}, always=False)


def test_secure_cookies_makes_the_cookie_secure_behind_a_tls_proxy(
    upstream_server: FakeUpstream, tmp_path: Path
) -> None:
    config = gateways.config(
        upstream_server, extra="ui:\n  enabled: true\n  secure_cookies: true\n"
    )
    with running(tmp_path, config) as gateway:
        page = httpx.get(gateway.url + "/ui/login")
        cookie = set_cookies(page)["sg_login"]
        assert cookie.endswith("Secure; Max-Age=600")


ROUTES = [
    ("/ui/keys", {"models": "*"}),
    ("/ui/keys/{key}/update", {"models": "*"}),
    ("/ui/keys/{key}/revoke", {}),
    ("/ui/keys/{key}/block", {}),
    ("/ui/keys/{key}/rotate", {"grace_seconds": "3600"}),
    ("/ui/teams", {"name": "csrf-team"}),
    ("/ui/users", {"name": "csrf-user"}),
    ("/ui/budgets", {"scope": "key", "scope_id": "{key}", "period": "daily", "max_usd": "1"}),
    ("/ui/budgets/{budget}", {"max_usd": "1"}),
    ("/ui/tokens", {"role": "viewer", "name": "csrf-token"}),
    ("/ui/tokens/{token}/revoke", {}),
    ("/ui/logout", {}),
]


@pytest.mark.parametrize("sent", ["missing", "wrong", "another session's"])
def test_every_state_changing_route_refuses_a_request_without_the_sessions_csrf_token(
    gateway: GatewayProcess, world: dict[str, Any], sent: str
) -> None:
    client = signed_in(gateway, gateway.admin_key)
    other = csrf_of(signed_in(gateway, gateway.admin_key))
    ids = {"key": world["key_a"]["id"], "budget": world["budget"]["id"]}
    ids["token"] = world["viewer"]["id"]
    before = gateway.admin("GET", "/admin/audit").json()["data"][0]["seq"]
    for route, form in ROUTES:
        path = route.format(**ids)
        data = {k: v.format(**ids) for k, v in form.items()}
        if sent == "wrong":
            data["csrf"] = "x" * 43
        elif sent == "another session's":
            data["csrf"] = other
        answer = client.post(path, data=data, follow_redirects=False)
        assert answer.status_code == 403, (path, answer.status_code)
        assert "CSRF" in answer.text
    # nothing changed: no audit entry, the key still answers, the session still stands
    assert gateway.admin("GET", "/admin/audit").json()["data"][0]["seq"] == before
    assert gateways.chat(gateway, world["key_a"]["key"]).status_code == 200
    assert client.get("/ui/keys").status_code == 200


def test_the_sign_in_form_refuses_a_post_without_its_own_token(gateway: GatewayProcess) -> None:
    client = client_of(gateway)
    client.get("/ui/login")  # the cookie, but no field
    refused = client.post("/ui/login", data={"credential": gateway.admin_key})
    assert refused.status_code == 403
    assert "sg_session" not in set_cookies(refused)
    cross = httpx.post(
        gateway.url + "/ui/login", data={"credential": gateway.admin_key, "login_token": "t"}
    )  # a cross-site form: no cookie of ours at all
    assert cross.status_code == 403


def test_values_are_escaped_in_every_page(gateway: GatewayProcess, world: dict[str, Any]) -> None:
    hostile = '<script>alert(1)</script>"><img src=x>'
    made = gateway.create_key([gateways.MODEL], key_alias=hostile)
    client = signed_in(gateway, gateway.admin_key)
    for path in ("/ui/keys", "/ui/audit"):
        page = client.get(path).text
        assert "<script>alert(1)" not in page and "<img src=x>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get("/ui/keys").text
    assert "\\u003cscript\\u003e" in client.get("/ui/audit").text  # the detail, as JSON
    gateway.admin("DELETE", f"/admin/keys/{made['id']}")


def test_a_csv_cell_that_a_spreadsheet_would_run_is_defused(
    gateway: GatewayProcess, world: dict[str, Any]
) -> None:
    from gateway.api.ui.pages import _cell

    assert _cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert _cell("@SUM(A1)") == "'@SUM(A1)"
    assert _cell("research") == "research" and _cell(None) == ""
    client = signed_in(gateway, gateway.admin_key)
    answer = client.get("/ui/spend.csv?group_by=key")
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    lines = answer.text.splitlines()
    assert lines[0] == "key,requests,prompt_tokens,completion_tokens,cached_tokens,cost_usd"
    assert any(line.startswith(world["key_a"]["id"] + ",") for line in lines[1:])


def test_the_dashboard_is_off_unless_configured(
    upstream_server: FakeUpstream, tmp_path: Path
) -> None:
    with running(tmp_path, gateways.config(upstream_server)) as gateway:
        answer = httpx.get(gateway.url + "/ui/login")
        assert answer.status_code == 404
        assert "sg_login" not in answer.headers.get("set-cookie", "")
