"""A gateway with the dashboard on (its admin key, a team admin token, a viewer token), and a
headless chromium."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.governance import gateways
from tests.governance.gateways import As
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess
from tests.ui import browser
from tests.ui.browser import Browser

UI = """
ui:
  enabled: true
  session_idle_seconds: 600
  session_max_seconds: 3600
"""


# The shared 30 s start-up wait (tests/support/gateway_process.py) is too short on a machine at
# load 30 and more, where importing the gateway alone took 27 s of wall time; these modules wait
# longer (a gateway that exits is still reported at once).
STARTUP_SECONDS = 180.0


def wait_started(process: GatewayProcess) -> GatewayProcess:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.process is not None and process.process.poll() is not None:
            raise RuntimeError(f"gateway exited:\n{process.stderr()}")
        try:
            if httpx.get(process.url + "/health/live", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.stop()
    raise RuntimeError(f"gateway did not start in {STARTUP_SECONDS}s:\n{process.stderr()}")


@contextmanager
def running(workdir: Path, text: str) -> Iterator[GatewayProcess]:
    """A gateway process on ``text`` for the length of the block (as gateways.running, with
    this module's longer start-up wait)."""
    process = wait_started(GatewayProcess(workdir, text).start(wait=False))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    config = gateways.config(upstream_server, extra=UI)
    with running(tmp_path_factory.mktemp("ui"), config) as gw:
        yield gw


@pytest.fixture(scope="module")
def world(gateway: GatewayProcess) -> dict[str, Any]:
    """Two teams, a key in each, a budget on team A's key, a team admin and a viewer of A."""
    admin = As(gateway, gateway.admin_key)
    team_a = admin("POST", "/admin/teams", json={"name": "research"}).json()
    team_b = admin("POST", "/admin/teams", json={"name": "payments"}).json()
    key_a = gateway.create_key([gateways.MODEL], team_id=team_a["id"], key_alias="research-bot")
    key_b = gateway.create_key([gateways.MODEL], team_id=team_b["id"], key_alias="payments-bot")
    budget = admin(
        "POST",
        "/admin/budgets",
        json={"scope": "key", "scope_id": key_a["id"], "period": "monthly", "max_usd": "10"},
    ).json()

    def token(role: str, team_id: str | None, name: str) -> dict[str, Any]:
        response = admin(
            "POST", "/admin/tokens", json={"role": role, "team_id": team_id, "name": name}
        )
        assert response.status_code == 201, response.text
        found: dict[str, Any] = response.json()
        return found

    for _ in range(2):  # some spend for the overview and the explorer
        assert gateways.chat(gateway, key_a["key"]).status_code == 200
    assert gateways.chat(gateway, key_b["key"]).status_code == 200
    return {
        "admin": admin,
        "team_a": team_a,
        "team_b": team_b,
        "key_a": key_a,
        "key_b": key_b,
        "budget": budget,
        "team_admin": token("team_admin", team_a["id"], "research lead"),
        "viewer": token("viewer", team_a["id"], "research auditor"),
    }


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    found = browser.start(tmp_path_factory.mktemp("downloads"))
    yield found
    found.quit()


@pytest.fixture
def fresh(chromium: Browser, gateway: GatewayProcess) -> Browser:
    """The browser with no cookies of the gateway (signed out)."""
    chromium.get(gateway.url + "/ui/login")
    chromium.driver.delete_all_cookies()
    chromium.driver.get_log("browser")  # drop what earlier tests logged
    return chromium
