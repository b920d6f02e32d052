"""The dashboard in a real browser (Debian's headless chromium, through selenium), against a
real gateway process: signing in with the admin credential and with admin tokens, a key made and
shown once, revoked so the client's next call fails, a budget edited, what a viewer and a team
admin see and may do, and signing out. Every page is checked for Content-Security-Policy
violations (chromium logs them as console errors), and the main pages are photographed (the
README's screenshots: SEALGATE_UI_SCREENSHOTS=docs/ui)."""

from __future__ import annotations

import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait

from tests.governance import gateways
from tests.support.gateway_process import GatewayProcess
from tests.ui.browser import Browser

PNG = b"\x89PNG\r\n\x1a\n"


def sign_in(browser: Browser, gateway: GatewayProcess, credential: str) -> None:
    browser.get(gateway.url + "/ui/login")
    browser.find("#credential").send_keys(credential)
    submit(browser, "#sign-in")
    assert browser.path == "/ui", browser.source[:2000]


def submit(browser: Browser, css: str) -> None:
    """Click the button and wait for the page the form's answer brings."""
    button = browser.find(css)
    button.click()
    WebDriverWait(browser.driver, 10).until(staleness_of(button))


def accept_confirmation(browser: Browser) -> None:
    WebDriverWait(browser.driver, 5).until(lambda d: d.switch_to.alert)
    browser.driver.switch_to.alert.accept()


def openai_client(gateway: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=gateway.url + "/v1", max_retries=0, timeout=20)


def chat(gateway: GatewayProcess, key: str) -> str | None:
    answer = openai_client(gateway, key).chat.completions.create(
        model=gateways.MODEL, messages=[{"role": "user", "content": "hello"}]
    )
    return answer.choices[0].message.content


def audit(gateway: GatewayProcess) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = gateway.admin("GET", "/admin/audit").json()["data"]
    return found


def write_controls(browser: Browser) -> list[str]:
    """The forms on the page that change something (the sign-out form aside)."""
    return [
        str(form.get_attribute("action"))
        for form in browser.all("form[method=post]")
        if not str(form.get_attribute("action")).endswith("/ui/logout")
    ]


def test_signing_in_with_an_admin_token_shows_that_token_as_the_signed_in_identity(
    fresh: Browser, gateway: GatewayProcess, world: dict[str, Any]
) -> None:
    token = world["team_admin"]
    sign_in(fresh, gateway, token["token"])
    identity = fresh.find("#identity").text
    assert f"token:{token['id']}" in identity and "team_admin" in identity
    assert token["token"] not in fresh.source
    logins = [e for e in audit(gateway) if e["action"] == "ui.login"]
    assert logins[0]["actor"] == f"token:{token['id']}"
    assert fresh.console_errors() == []


def test_a_wrong_credential_signs_nobody_in(fresh: Browser, gateway: GatewayProcess) -> None:
    fresh.get(gateway.url + "/ui/login")
    fresh.find("#credential").send_keys("sg-adm-0123456789abcdef-not-a-real-token-at-all-000000")
    submit(fresh, "#sign-in")  # the refusal is a new page: wait for it, not for the old one
    assert fresh.path == "/ui/login"
    assert "not accepted" in fresh.find("#error").text
    fresh.get(gateway.url + "/ui/keys")
    assert fresh.path == "/ui/login"


def test_a_key_created_in_the_browser_is_shown_exactly_once_and_then_answers_calls(
    fresh: Browser, gateway: GatewayProcess, world: dict[str, Any]
) -> None:
    sign_in(fresh, gateway, gateway.admin_key)
    fresh.get(gateway.url + "/ui/keys")
    fresh.find("details.card summary").click()
    form = fresh.find("#create-key")
    form.find_element("name", "key_alias").send_keys("made-in-browser")
    models = form.find_element("name", "models")
    models.clear()
    models.send_keys(gateways.MODEL)
    submit(fresh, "#create-key button[type=submit]")

    key = fresh.find("#new-key").text
    assert key.startswith("sk-sg-")
    if os.environ.get("SEALGATE_UI_SCREENSHOTS"):
        fresh.screenshot(Path(os.environ["SEALGATE_UI_SCREENSHOTS"]) / "key-created.png")
    copy = fresh.find("button.copy")
    copy.click()  # ui.js runs under the CSP: the button says what happened
    WebDriverWait(fresh.driver, 5).until(lambda d: copy.text != "Copy")
    assert chat(gateway, key)

    fresh.get(gateway.url + "/ui/keys")  # and never again
    assert "made-in-browser" in fresh.source
    assert key not in fresh.source
    created = next(e for e in audit(gateway) if e["action"] == "key.create")
    assert created["actor"] == "admin" and created["detail"]["key_alias"] == "made-in-browser"
    assert key not in str(audit(gateway))
    assert fresh.console_errors() == []


def test_revoking_a_key_in_the_browser_makes_the_clients_next_call_fail(
    fresh: Browser, gateway: GatewayProcess
) -> None:
    made = gateway.create_key([gateways.MODEL], key_alias="to-revoke")
    assert chat(gateway, made["key"])
    sign_in(fresh, gateway, gateway.admin_key)
    fresh.get(gateway.url + "/ui/keys")
    fresh.find(f"tr[data-key-id='{made['id']}'] button.revoke").click()
    accept_confirmation(fresh)
    WebDriverWait(fresh.driver, 5).until(lambda d: "revoked" in fresh.find("p.notice").text)
    assert "revoked" in fresh.find(f"tr[data-key-id='{made['id']}']").text
    with pytest.raises(openai.AuthenticationError):
        chat(gateway, made["key"])


def test_editing_a_budget_in_the_browser_changes_its_limit_and_its_state(
    fresh: Browser, gateway: GatewayProcess, world: dict[str, Any]
) -> None:
    budget = world["budget"]
    sign_in(fresh, gateway, world["team_admin"]["token"])  # a key's budget: the team admin's
    fresh.get(gateway.url + "/ui/budgets")
    row = f"tr[data-budget-id='{budget['id']}']"
    assert fresh.find(f"{row} .budget-state").text == "within"
    fresh.find(f"{row} summary").click()
    amount = fresh.find(f"{row} form.edit-budget input[name=max_usd]")
    amount.clear()
    amount.send_keys("0.01")  # below what the key has spent (2 calls at $0.025)
    submit(fresh, f"{row} form.edit-budget button[type=submit]")
    assert "Saved" in fresh.find("p.notice").text
    assert fresh.find(f"{row} .budget-state").text == "hard limit reached"
    stored = next(
        b for b in world["admin"]("GET", "/admin/budgets").json()["data"] if b["id"] == budget["id"]
    )
    assert Decimal(stored["max_usd"]) == Decimal("0.01") and stored["hard_exceeded"] is True
    edited = next(e for e in audit(gateway) if e["action"].startswith("budget."))
    assert edited["actor"] == f"token:{world['team_admin']['id']}"
    fresh.find(f"{row} summary").click()
    amount = fresh.find(f"{row} form.edit-budget input[name=max_usd]")
    amount.clear()
    amount.send_keys("10")
    submit(fresh, f"{row} form.edit-budget button[type=submit]")
    assert fresh.find(f"{row} .budget-state").text == "within"


def test_a_budget_alert_is_shown_on_the_budgets_page_once_a_request_hits_the_hard_limit(
    fresh: Browser, gateway: GatewayProcess, world: dict[str, Any]
) -> None:
    key = gateway.create_key([gateways.MODEL])
    # the call reserves $0.033 (tests/governance/gateways.py), over this budget: refused at once
    budget = world["admin"](
        "POST",
        "/admin/budgets",
        json={"scope": "key", "scope_id": key["id"], "period": "daily", "max_usd": "0.03"},
    ).json()
    assert gateways.chat(gateway, key["key"]).status_code == 429
    for _ in range(100):  # the alert is recorded off the request's path
        alerts = world["admin"]("GET", "/admin/alerts").json()["data"]
        if any(a["budget_id"] == budget["id"] for a in alerts):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the hard-limit alert was not recorded within 10 s")
    sign_in(fresh, gateway, gateway.admin_key)
    fresh.get(gateway.url + "/ui/budgets")
    row = f"#alerts tr[data-budget-id='{budget['id']}']"
    assert fresh.find(f"{row} .alert-kind").text == "hard"
    assert "$0.030000000" in fresh.find(row).text


def test_a_viewer_sees_no_write_controls_and_a_forged_write_is_refused(
    fresh: Browser, gateway: GatewayProcess, world: dict[str, Any]
) -> None:
    sign_in(fresh, gateway, world["viewer"]["token"])
    for page in ("/ui", "/ui/keys", "/ui/teams", "/ui/budgets", "/ui/spend", "/ui/audit"):
        fresh.get(gateway.url + page)
        assert write_controls(fresh) == [], page
        assert not fresh.all("button.revoke"), page
    assert "Admin tokens" not in fresh.find("header nav").text

    # The viewer forges the create form with its own session and CSRF token: the admin API
    # behind the dashboard refuses it, as it refuses the viewer's token directly.
    fresh.get(gateway.url + "/ui/keys")
    cookie = fresh.cookie("sg_session")
    assert cookie is not None
    csrf = fresh.find("form.who input[name=csrf]").get_attribute("value")
    before = len(gateway.admin("GET", "/admin/keys").json()["data"])
    forged = httpx.post(
        gateway.url + "/ui/keys",
        data={"csrf": csrf, "models": gateways.MODEL},
        cookies={"sg_session": str(cookie["value"])},
    )
    assert forged.status_code == 403
    assert "may not keys write" in forged.text
    direct = world["admin"].__class__(gateway, world["viewer"]["token"])(
        "POST", "/admin/keys", json={"models": [gateways.MODEL]}
    )
    assert direct.status_code == 403
    assert len(gateway.admin("GET", "/admin/keys").json()["data"]) == before


def test_a_team_admin_sees_only_their_own_team(
    fresh: Browser, gateway: GatewayProcess, world: dict[str, Any]
) -> None:
    sign_in(fresh, gateway, world["team_admin"]["token"])
    fresh.get(gateway.url + "/ui/keys")
    assert world["key_a"]["id"] in fresh.source
    assert world["key_b"]["id"] not in fresh.source
    fresh.get(gateway.url + "/ui/teams")
    assert "research" in fresh.find("#teams").text
    assert "payments" not in fresh.source and world["team_b"]["id"] not in fresh.source
    fresh.get(gateway.url + "/ui/spend?group_by=key")
    assert world["key_a"]["id"] in fresh.find("#spend").text
    assert world["key_b"]["id"] not in fresh.source
    fresh.get(gateway.url + "/ui/spend?group_by=team")
    assert world["team_b"]["id"] not in fresh.source
    fresh.get(gateway.url + "/ui/audit")  # the audit log is the gateway admin's
    assert fresh.find("#error").text.startswith("role team_admin may not audit read")


def test_signing_out_ends_the_session_on_the_server(
    fresh: Browser, gateway: GatewayProcess
) -> None:
    sign_in(fresh, gateway, gateway.admin_key)
    cookie = fresh.cookie("sg_session")
    assert cookie is not None
    secret = str(cookie["value"])
    assert httpx.get(gateway.url + "/ui/keys", cookies={"sg_session": secret}).status_code == 200
    submit(fresh, "#logout")
    assert fresh.path == "/ui/login"
    # The cookie's value, replayed after the sign-out, opens nothing: the row is ended.
    replay = httpx.get(gateway.url + "/ui/keys", cookies={"sg_session": secret})
    assert replay.status_code == 303 and replay.headers["location"] == "/ui/login"
    fresh.driver.add_cookie({"name": "sg_session", "value": secret, "path": "/ui"})
    fresh.get(gateway.url + "/ui/keys")
    assert fresh.path == "/ui/login"
    assert audit(gateway)[0]["action"] == "ui.logout"


PAGES = {
    "overview": "/ui",
    "keys": "/ui/keys",
    "teams": "/ui/teams",
    "budgets": "/ui/budgets",
    "tokens": "/ui/tokens",
    "spend": "/ui/spend?group_by=model",
    "audit": "/ui/audit",
    "integrity": "/ui/integrity",
}


def test_every_main_page_renders_with_no_policy_violation_and_is_photographed(
    fresh: Browser, gateway: GatewayProcess, world: dict[str, Any], tmp_path: Path
) -> None:
    shots = Path(os.environ.get("SEALGATE_UI_SCREENSHOTS") or tmp_path)
    sign_in(fresh, gateway, gateway.admin_key)
    for name, page in PAGES.items():
        fresh.get(gateway.url + page)
        assert fresh.find("main h1").text, name
        assert not fresh.all("#error"), (name, fresh.source[:1000])
        assert fresh.console_errors() == [], name
        fresh.screenshot(shots / f"{name}.png")
        assert (shots / f"{name}.png").read_bytes()[:8] == PNG
    fresh.get(gateway.url + "/ui")
    assert fresh.all("figure.chart svg rect.bar"), "the overview draws its charts"
    assert "research" in fresh.source  # a top team by spend
    fresh.get(gateway.url + "/ui/audit")
    assert "Hash chain intact" in fresh.find("#chain").text
