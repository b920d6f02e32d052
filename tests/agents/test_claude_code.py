"""Claude Code, the real one from npm, completing a non-interactive task (``claude -p``) through
Sealgate: ANTHROPIC_BASE_URL points at a running gateway, whose Anthropic deployment is the fake
upstream replaying recorded Messages replies. The upstream asks for one ``Write`` tool call;
Claude Code runs it (the file appears) and the second turn ends the task.

Claude Code is installed with ``npm ci`` from tests/agents/claude-code/package-lock.json, where
every package has its sha512 integrity; npm is required, and its absence fails the test (it never
skips). It is a native binary (the platform package that npm picks); nothing of it is run through
node. Its traffic other than to the gateway is switched off by its own settings
(CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC and friends), and HOME is a temporary directory.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.wire.anthropic.native import DEFAULT_BETAS
from tests.support.fake_upstream import Behaviour, FakeUpstream
from tests.support.gateway_process import GatewayProcess

PACKAGE = Path(__file__).resolve().parent / "claude-code"
VERSION = "2.1.332"
UPSTREAM_KEY = "sk-ant-upstream-fake-key-for-claude-code"
MODEL = "claude-sonnet"
PLATFORMS = {("Linux", "x86_64"): "linux-x64", ("Linux", "aarch64"): "linux-arm64"}


def _binary() -> Path:
    suffix = PLATFORMS.get((platform.system(), platform.machine()))
    where = f"{platform.system()} {platform.machine()}"
    assert suffix is not None, f"no Claude Code package for {where}"
    return PACKAGE / "node_modules" / "@anthropic-ai" / f"claude-code-{suffix}" / "claude"


@pytest.fixture(scope="module")
def claude() -> Path:
    npm = shutil.which("npm")
    assert npm is not None, "npm is needed to install Claude Code from the locked manifest"
    binary = _binary()
    if not binary.exists():
        subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=PACKAGE,
            check=True,
            timeout=600,
        )
    version = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert version.stdout.startswith(VERSION)
    return binary


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    config = f"""
deployments:
  - model: {MODEL}
    provider: anthropic
    upstream_model: claude-sonnet-4-5
    base_url: {upstream_server.base_url}
    credential: env:CLAUDE_UPSTREAM_KEY
    allow_private_network: true
verify:
  mode: "off"
governance:
  default_prices: {{input: "3", output: "15"}}
"""
    workdir = tmp_path_factory.mktemp("claude-code-gateway")
    process = GatewayProcess(workdir, config, env={"CLAUDE_UPSTREAM_KEY": UPSTREAM_KEY}).start()
    yield process
    process.stop()


def _run(claude: Path, base_url: str, key: str, workdir: Path, prompt: str) -> dict[str, object]:
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": key,
        "ANTHROPIC_MODEL": MODEL,
        "ANTHROPIC_SMALL_FAST_MODEL": MODEL,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": MODEL,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": MODEL,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": MODEL,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    done = subprocess.run(
        [str(claude), "-p", prompt, "--output-format", "json", "--allowedTools", "Write"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_claude_code_completes_a_task_with_a_tool_call_through_sealgate(
    claude: Path, gateway: GatewayProcess, upstream: FakeUpstream, tmp_path: Path
) -> None:
    key = gateway.create_key([MODEL])["key"]
    target = tmp_path / "hello.txt"
    upstream.default = Behaviour(
        tool="Write", tool_input={"file_path": str(target), "content": "hi from sealgate\n"}
    )
    result = _run(claude, gateway.url, key, tmp_path, "Create hello.txt saying hi.")
    assert result["is_error"] is False and result["subtype"] == "success"
    assert target.read_text() == "hi from sealgate\n"  # the tool ran
    assert result["result"] == FakeUpstream.REPLY_TEXT  # the turn after the tool result
    calls = [r for r in upstream.requests if r.path == "/v1/messages"]
    assert calls, "Claude Code's requests did not reach the upstream"
    for seen in calls:
        assert seen.headers["x-api-key"] == UPSTREAM_KEY  # the gateway's key, not the client's
        assert seen.body["model"] == "claude-sonnet-4-5"
    last = calls[-1].body["messages"][-1]["content"]
    assert any(block.get("type") == "tool_result" for block in last)
    # what Claude Code sends natively reached the upstream unchanged
    first = calls[0]
    assert first.body["thinking"]["type"] in ("adaptive", "enabled")
    assert "claude-code-20250219" in first.headers["anthropic-beta"].split(",")


def test_the_default_beta_allowlist_covers_what_claude_code_sends(
    claude: Path, upstream: FakeUpstream, tmp_path: Path
) -> None:
    """Claude Code pointed at the fake upstream directly: every anthropic-beta value it sends
    is in the gateway's default allowlist, so none is held back on a default deployment."""
    _run(claude, upstream.base_url, UPSTREAM_KEY, tmp_path, "say hello")
    sent = {
        value
        for seen in upstream.requests
        for value in seen.headers.get("anthropic-beta", "").split(",")
        if value
    }
    assert sent, "Claude Code sent no anthropic-beta header"
    assert sent <= DEFAULT_BETAS, sorted(sent - DEFAULT_BETAS)
