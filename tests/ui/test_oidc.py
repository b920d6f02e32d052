"""Single sign-on against a real OpenID Connect provider on loopback (OpenBao's identity OIDC
provider, ``bao server -dev``): the authorization code flow with PKCE, discovery and JWKS, roles
mapped from the ``groups`` claim (gateway admin, team admin of a named team, viewer), a refused
login for an identity that maps to no role, state bound to the browser and used once, and the
same settings validating JWT bearers on the admin API: a token the provider signed is accepted
(also after the provider rotates its key), one signed by another key is refused.

Two tests run the whole flow in headless chromium, through OpenBao's own sign-in page (its web
UI is the provider's authorization endpoint). The others take the user agent's step with
``oidc_provider.OidcProvider.authorize``: it calls the provider's authorize API with the person's
OpenBao token, as OpenBao's UI does. Everything else is the gateway talking to the provider."""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from gateway.governance.oidc import pkce_pair
from tests.governance import gateways
from tests.secrets.openbao_server import OpenBao
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess
from tests.ui import browser
from tests.ui.browser import Browser
from tests.ui.conftest import wait_started
from tests.ui.oidc_provider import OidcProvider

pytestmark = pytest.mark.openbao

PEOPLE = {
    "alice": ["llm-platform"],  # gateway admin
    "rita": ["research-leads"],  # team admin of the team named "research"
    "victor": ["auditors", "unrelated"],  # viewer of every team
    "mallory": ["contractors"],  # mapped to nothing
}


def oidc_config(provider: OidcProvider, redirect: str) -> str:
    return f"""
ui:
  enabled: true
  oidc:
    issuer: {provider.issuer}
    client_id: {provider.client_id}
    redirect_url: {redirect}
    scopes: [openid, groups]
    roles_claim: groups
    name_claim: username
    jwks_refresh_seconds: 1
    roles:
      - {{value: llm-platform, role: admin}}
      - {{value: research-leads, role: team_admin, team: research}}
      - {{value: auditors, role: viewer}}
"""


@pytest.fixture(scope="module")
def sso(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("oidc")
    (work / "bao").mkdir()
    bao = OpenBao(work / "bao")
    bao.start()
    gateway = GatewayProcess(work / "gateway")
    redirect = f"{gateway.url}/ui/oidc/callback"
    provider = OidcProvider(bao)
    try:
        provider.configure(redirect, PEOPLE)
        gateway.config_path = gateway.workdir / "config.yaml"
        gateway.config_path.write_text(
            gateways.config(upstream_server, extra=oidc_config(provider, redirect))
        )
        wait_started(gateway.start(wait=False))
        research = gateway.admin("POST", "/admin/teams", json={"name": "research"}).json()
        other = gateway.admin("POST", "/admin/teams", json={"name": "payments"}).json()
        key_r = gateway.create_key([gateways.MODEL], team_id=research["id"])
        key_o = gateway.create_key([gateways.MODEL], team_id=other["id"])
        yield {
            "gateway": gateway,
            "provider": provider,
            "redirect": redirect,
            "research": research,
            "key_research": key_r,
            "key_other": key_o,
        }
    finally:
        gateway.stop()
        bao.stop()


OPEN: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().close()


def sign_in(sso: dict[str, Any], person: str) -> tuple[httpx.Client, httpx.Response]:
    """The code flow for ``person``: the gateway's redirect, the provider's code, the callback."""
    gateway: GatewayProcess = sso["gateway"]
    client = httpx.Client(base_url=gateway.url, timeout=15)
    OPEN.append(client)
    start = client.get("/ui/oidc/start")
    assert start.status_code == 302, start.text
    location = start.headers["location"]
    granted = sso["provider"].authorize(location, person)
    callback = client.get(
        "/ui/oidc/callback", params={"code": granted["code"], "state": granted["state"]}
    )
    return client, callback


def identity(client: httpx.Client) -> str:
    page = client.get("/ui")
    found = re.search(r'<span id="identity"[^>]*>([^<]+)</span>', page.text)
    assert found is not None, page.text[:2000]
    return found[1]


def test_the_redirect_is_a_code_request_with_pkce_state_and_nonce(sso: dict[str, Any]) -> None:
    gateway: GatewayProcess = sso["gateway"]
    with httpx.Client(base_url=gateway.url) as client:
        start = client.get("/ui/oidc/start")
    assert start.status_code == 302
    url = urllib.parse.urlsplit(start.headers["location"])
    query = dict(urllib.parse.parse_qsl(url.query))
    provider: OidcProvider = sso["provider"]
    discovered = httpx.get(provider.issuer + "/.well-known/openid-configuration").json()
    assert start.headers["location"].startswith(discovered["authorization_endpoint"] + "?")
    assert query["response_type"] == "code" and query["client_id"] == provider.client_id
    assert query["redirect_uri"] == sso["redirect"] and query["scope"] == "openid groups"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 43 and len(query["nonce"]) >= 43
    state_cookie = start.headers["set-cookie"]
    assert state_cookie.startswith(f"sg_oidc={query['state']};")
    assert "HttpOnly" in state_cookie and "SameSite=Lax" in state_cookie


def test_a_gateway_admin_signs_in_through_the_provider_and_is_audited_by_name(
    sso: dict[str, Any],
) -> None:
    client, callback = sign_in(sso, "alice")
    assert callback.status_code == 200, callback.text
    assert 'http-equiv="refresh" content="0;url=/ui"' in callback.text
    assert "sg_session" in callback.cookies
    assert identity(client) == "oidc:alice · admin"
    page = client.get("/ui/keys")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    made = client.post("/ui/keys", data={"csrf": csrf[1], "models": gateways.MODEL})
    assert made.status_code == 201
    entries = sso["gateway"].admin("GET", "/admin/audit").json()["data"]
    assert entries[0]["action"] == "key.create" and entries[0]["actor"] == "oidc:alice"
    assert entries[1]["action"] == "ui.login" and entries[1]["actor"] == "oidc:alice"
    assert entries[1]["detail"] == {"method": "oidc"}


def test_a_group_mapped_to_a_named_team_signs_in_as_that_teams_admin(
    sso: dict[str, Any],
) -> None:
    client, callback = sign_in(sso, "rita")
    assert callback.status_code == 200, callback.text
    assert identity(client) == f"oidc:rita · team_admin · team {sso['research']['id']}"
    keys = client.get("/ui/keys").text
    assert sso["key_research"]["id"] in keys and sso["key_other"]["id"] not in keys


def test_a_viewer_group_signs_in_as_a_viewer(sso: dict[str, Any]) -> None:
    client, callback = sign_in(sso, "victor")
    assert callback.status_code == 200, callback.text
    assert identity(client) == "oidc:victor · viewer"
    assert 'id="create-key"' not in client.get("/ui/keys").text


def test_an_identity_whose_groups_map_to_no_role_is_refused(sso: dict[str, Any]) -> None:
    client, callback = sign_in(sso, "mallory")
    assert callback.status_code == 403
    assert "no role at this gateway" in callback.text
    assert "sg_session" not in callback.cookies
    assert client.get("/ui").headers.get("location") == "/ui/login"


def test_a_callback_is_refused_in_another_browser_and_a_second_time(sso: dict[str, Any]) -> None:
    gateway: GatewayProcess = sso["gateway"]
    with httpx.Client(base_url=gateway.url, timeout=15) as victim:
        start = victim.get("/ui/oidc/start")
        granted = sso["provider"].authorize(start.headers["location"], "alice")
        params = {"code": granted["code"], "state": granted["state"]}
        # someone else's browser (no state cookie) cannot spend the victim's code
        elsewhere = httpx.get(gateway.url + "/ui/oidc/callback", params=params)
        assert elsewhere.status_code == 403 and "sg_session" not in elsewhere.cookies
        assert victim.get("/ui/oidc/callback", params=params).status_code == 200
        again = victim.get("/ui/oidc/callback", params=params)  # the state is spent
        assert again.status_code == 403


def automation_token(sso: dict[str, Any], person: str) -> str:
    verifier, challenge = pkce_pair()
    return str(sso["provider"].id_token(person, sso["redirect"], verifier, challenge))


def test_the_admin_api_accepts_a_jwt_the_provider_signed_with_the_mapped_role(
    sso: dict[str, Any],
) -> None:
    gateway: GatewayProcess = sso["gateway"]
    admin = {"Authorization": f"Bearer {automation_token(sso, 'alice')}"}
    made = httpx.post(gateway.url + "/admin/teams", json={"name": "by-jwt"}, headers=admin)
    assert made.status_code == 201, made.text
    assert gateway.admin("GET", "/admin/audit").json()["data"][0]["actor"] == "oidc:alice"
    viewer = {"Authorization": f"Bearer {automation_token(sso, 'victor')}"}
    assert httpx.get(gateway.url + "/admin/keys", headers=viewer).status_code == 200
    refused = httpx.post(gateway.url + "/admin/teams", json={"name": "no"}, headers=viewer)
    assert refused.status_code == 403
    unmapped = {"Authorization": f"Bearer {automation_token(sso, 'mallory')}"}
    assert httpx.get(gateway.url + "/admin/keys", headers=unmapped).status_code == 403


def test_a_token_signed_by_another_key_is_refused(sso: dict[str, Any]) -> None:
    gateway: GatewayProcess = sso["gateway"]
    genuine = automation_token(sso, "alice")
    header = jwt.get_unverified_header(genuine)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = {
        "same key id, another key": jwt.encode(
            claims, impostor, algorithm="RS256", headers={"kid": header["kid"]}
        ),
        "an unknown key id": jwt.encode(
            claims, impostor, algorithm="RS256", headers={"kid": "not-the-providers"}
        ),
        "a shared secret (HS256)": jwt.encode(
            claims, "s" * 32, algorithm="HS256", headers={"kid": header["kid"]}
        ),
        "no signature": jwt.encode(claims, None, algorithm="none", headers={"kid": header["kid"]}),
    }
    for what, token in forged.items():
        answer = httpx.get(
            gateway.url + "/admin/keys", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 401, what
        assert token not in answer.text and token not in gateway.stderr()
    tampered = genuine.split(".")
    payload = jwt.utils.base64url_encode(
        jwt.api_jws.json.dumps({**claims, "groups": ["llm-platform", "x"]}).encode()
    ).decode()
    answer = httpx.get(
        gateway.url + "/admin/keys",
        headers={"Authorization": f"Bearer {tampered[0]}.{payload}.{tampered[2]}"},
    )
    assert answer.status_code == 401
    assert genuine not in gateway.stderr()


def test_a_key_the_provider_rotated_to_is_picked_up_from_its_jwks(sso: dict[str, Any]) -> None:
    gateway: GatewayProcess = sso["gateway"]
    before = automation_token(sso, "alice")
    answer = httpx.get(gateway.url + "/admin/keys", headers={"Authorization": f"Bearer {before}"})
    assert answer.status_code == 200  # the gateway now holds the provider's key set
    sso["provider"].rotate_key()
    time.sleep(1.1)  # past jwks_refresh_seconds since the gateway last fetched the key set
    after = automation_token(sso, "alice")
    assert jwt.get_unverified_header(after)["kid"] != jwt.get_unverified_header(before)["kid"]
    for token in (after, before):  # the new key, and the old one still published
        answer = httpx.get(
            gateway.url + "/admin/keys", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200, answer.text


def test_sign_in_is_refused_when_the_provider_cannot_be_reached(
    upstream_server: FakeUpstream, tmp_path: Path
) -> None:
    gateway = GatewayProcess(tmp_path)
    gateway.config_path = tmp_path / "config.yaml"
    nowhere = f"http://127.0.0.1:{gateways_free_port()}/v1/identity/oidc/provider/none"
    text = gateways.config(upstream_server, extra=oidc_config_for(nowhere, gateway.url))
    gateway.config_path.write_text(text)
    wait_started(gateway.start(wait=False))
    try:
        answer = httpx.get(gateway.url + "/ui/oidc/start")
        assert answer.status_code == 502
        assert "could not be reached" in answer.text
        refused = httpx.get(
            gateway.url + "/admin/keys", headers={"Authorization": "Bearer eyJa.eyJb.c"}
        )
        assert refused.status_code == 401
    finally:
        gateway.stop()


def gateways_free_port() -> int:
    from tests.support.gateway_process import free_port

    return free_port()


def oidc_config_for(issuer: str, gateway_url: str) -> str:
    return f"""
ui:
  enabled: true
  oidc:
    issuer: {issuer}
    client_id: sealgate
    redirect_url: {gateway_url}/ui/oidc/callback
    roles:
      - {{value: admins, role: admin}}
"""


def test_no_credential_of_the_dashboard_appears_in_anything_the_gateway_produced(
    sso: dict[str, Any],
) -> None:
    """Leak canary for the dashboard's credential paths: the admin key and an admin token typed
    into the sign-in form, the session cookies' secrets, a virtual key made (and shown once) in
    the dashboard, the OpenID Connect code and ID token, a JWT bearer. None may be in the log,
    /metrics, the audit log or any file the gateway wrote (the SQLite database and its WAL)."""
    gateway: GatewayProcess = sso["gateway"]
    canaries: dict[str, str] = {"admin key": gateway.admin_key}
    made = gateway.admin(
        "POST", "/admin/tokens", json={"role": "viewer", "team_id": None, "name": "canary"}
    ).json()
    canaries["admin token"] = made["token"]
    for name, credential in (("admin key", gateway.admin_key), ("admin token", made["token"])):
        with httpx.Client(base_url=gateway.url, timeout=15) as client:
            page = client.get("/ui/login")
            login = re.search(r'name="login_token" value="([^"]+)"', page.text)
            assert login is not None
            form = {"login_token": login[1], "credential": credential}
            answer = client.post("/ui/login", data=form)
            assert answer.status_code == 303
            canaries[f"session of the {name}"] = str(answer.cookies["sg_session"])
            keys = client.get("/ui/keys").text
            assert credential not in keys
    client = httpx.Client(base_url=gateway.url, timeout=15)
    OPEN.append(client)
    start = client.get("/ui/oidc/start")
    granted = sso["provider"].authorize(start.headers["location"], "alice")
    canaries["authorization code"] = granted["code"]
    callback = client.get("/ui/oidc/callback", params=granted)
    assert callback.status_code == 200
    canaries["session of the SSO sign-in"] = str(callback.cookies["sg_session"])
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/keys").text)
    assert csrf is not None
    created = client.post("/ui/keys", data={"csrf": csrf[1], "models": gateways.MODEL})
    key = re.search(r'<code id="new-key">([^<]+)</code>', created.text)
    assert key is not None
    canaries["virtual key made in the dashboard"] = key[1]
    bearer = automation_token(sso, "alice")
    canaries["JWT bearer"] = bearer
    assert (
        httpx.get(
            gateway.url + "/admin/keys", headers={"Authorization": f"Bearer {bearer}"}
        ).status_code
        == 200
    )
    metrics = gateway.admin("GET", "/metrics").text
    audit = gateway.admin("GET", "/admin/audit").text
    client.post("/ui/logout", data={"csrf": csrf[1]})

    def everything() -> dict[str, bytes]:
        found = {
            "stderr": gateway.stderr().encode(),
            "stdout": gateway.stdout_path.read_bytes(),
            "/metrics": metrics.encode(),
            "/admin/audit": audit.encode(),
        }
        for path in gateway.data_dir.rglob("*"):
            if path.is_file():
                found[str(path)] = path.read_bytes()
        return found

    for where, content in everything().items():
        for what, value in canaries.items():
            assert value.encode() not in content, f"the {what} is in {where}"


def sso_in_browser(sso: dict[str, Any], person: str) -> Browser:
    """The whole code flow in chromium: the gateway's sign-in page, OpenBao's own sign-in page
    (its web UI, the provider's authorization endpoint), userpass, and back to the gateway."""
    gateway: GatewayProcess = sso["gateway"]
    chromium = browser.start()
    try:
        chromium.get(gateway.url + "/ui/login")
        chromium.find("#sso").click()
        WebDriverWait(chromium.driver, 30).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "select[data-test-select=auth-method]")
        )
        assert chromium.driver.current_url.startswith(sso["provider"].bao.address + "/ui/vault/")
        Select(chromium.find("select[data-test-select=auth-method]")).select_by_value("userpass")
        WebDriverWait(chromium.driver, 10).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "input[name=username]")
        )
        chromium.find("input[name=username]").send_keys(person)
        chromium.find("input[name=password]").send_keys(sso["provider"].passwords[person])
        chromium.find("#auth-submit").click()
        WebDriverWait(chromium.driver, 30).until(
            lambda d: (
                (d.current_url.startswith(gateway.url + "/ui") and "/ui/oidc/" not in d.current_url)
                or bool(d.find_elements(By.CSS_SELECTOR, "#error"))
            )
        )
    except BaseException:
        chromium.quit()
        raise
    return chromium


def test_in_a_browser_a_person_signs_in_at_openbao_and_lands_signed_in_at_the_gateway(
    sso: dict[str, Any],
) -> None:
    chromium = sso_in_browser(sso, "rita")
    try:
        assert chromium.path == "/ui"
        identity = chromium.find("#identity").text
        assert identity == f"oidc:rita · team_admin · team {sso['research']['id']}"
        assert chromium.cookie("sg_session") is not None
        assert chromium.console_errors() == []
    finally:
        chromium.quit()


def test_in_a_browser_an_unmapped_person_is_refused_after_signing_in_at_openbao(
    sso: dict[str, Any],
) -> None:
    chromium = sso_in_browser(sso, "mallory")
    try:
        assert chromium.path == "/ui/oidc/callback"
        assert "no role at this gateway" in chromium.find("#error").text
        assert chromium.cookie("sg_session") is None
    finally:
        chromium.quit()
