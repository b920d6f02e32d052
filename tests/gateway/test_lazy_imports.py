"""Issue 23, item 3: optional subsystems are imported only when configured, so an idle gateway on
embedded defaults stays small. The MCP SDK alone is tens of MB resident; redis-py, botocore (STS
and the event-stream decoder) and PyJWT about 16 MB together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.gateway_process import GatewayProcess

# Builds the whole gateway in process (the composition root, as `sealgate serve` does), sends
# one request to /mcp through it, and prints which of the optional packages were imported.
BUILD = """
import asyncio, json, sys, tempfile
from pathlib import Path
from gateway.auth import AdminCredential
from gateway.serve import build_services, load_config

config = load_config(sys.argv[1] if len(sys.argv) > 1 else None)
with tempfile.TemporaryDirectory() as data:
    app = build_services(config, Path(data), AdminCredential("sga-" + "x" * 32)).app()
    sent = []
    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}
    async def send(message):
        sent.append(message)
    scope = {"type": "http", "method": "POST", "path": "/mcp", "raw_path": b"/mcp",
             "query_string": b"", "headers": [(b"content-type", b"application/json")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 4000), "scheme": "http",
             "http_version": "1.1", "asgi": {"version": "3.0"}}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    optional = {"mcp", "mcp_types", "hvac", "psycopg", "jinja2", "redis", "botocore", "jwt"}
    loaded = sorted({m.split(".")[0] for m in sys.modules} & optional)
    print(json.dumps({"status": status, "loaded": loaded}))
"""

WITH_REDIS = """\
deployments:
  - model: mock-gpt
    provider: mock
governance:
  counters: redis
  redis: {url: "redis://127.0.0.1:6379/0"}
"""

WITH_SERVER = """\
deployments:
  - model: mock-gpt
    provider: mock
mcp:
  servers:
    - name: tickets
      url: https://mcp.example.com/mcp
"""


def build(*args: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALGATE_")}
    result = subprocess.run(
        [sys.executable, "-c", BUILD, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def test_the_bundled_config_imports_no_mcp_sdk_vault_postgres_redis_aws_or_jwt_client() -> None:
    found = build()
    assert found["loaded"] == [], f"imported with nothing configured that needs them: {found}"
    assert found["status"] == 404  # /mcp, answered without the SDK


def test_a_gateway_with_an_mcp_server_does_import_the_sdk(tmp_path: Path) -> None:
    # The check above can fail: the same probe sees the SDK once a server is configured.
    config = tmp_path / "gateway.yaml"
    config.write_text(WITH_SERVER)
    found = build(str(config))
    assert "mcp" in found["loaded"] and "mcp_types" in found["loaded"]
    assert found["status"] == 401  # /mcp is served (and wants a virtual key)


def test_a_gateway_with_redis_counters_does_import_redis(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(WITH_REDIS)
    assert "redis" in build(str(config))["loaded"]


def test_mcp_on_a_gateway_with_no_mcp_servers_answers_a_404_that_says_why(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path, env={"SEALGATE_VERIFY_MODE": "off"}).start()
    try:
        response = httpx.post(gateway.url + "/mcp", json={}, timeout=10)
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["code"] == "mcp_not_enabled"
        assert "mcp.servers" in error["message"]
        # the admin API of the MCP gateway is unchanged: no servers, listed as none
        listed = gateway.admin("GET", "/admin/mcp/servers")
        assert listed.status_code == 200, listed.text
    finally:
        gateway.stop()
