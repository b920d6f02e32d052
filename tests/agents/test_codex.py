"""The Codex CLI (``@openai/codex`` from npm, the version pinned in tests/agents/codex/
package-lock.json, installed with ``npm ci`` from that lock) completes one non-interactive task
(``codex exec``) through Sealgate: it asks the model, the model (a fake upstream replaying the
provider's recorded wire format, scripted to call Codex's own shell tool) has it run a command
that writes a file, Codex sends the command's output back, and the model's final answer ends
the run. Over an OpenAI deployment (the Responses API passed through) and an Anthropic one
(translated to Messages and back).

Codex's sandbox (bubblewrap) needs user namespaces this container does not give a root
process, so the run uses ``--dangerously-bypass-approvals-and-sandbox`` inside a throw-away
directory; everything else is the CLI as users run it, with a custom model provider pointed at
the gateway and the virtual key in the environment variable that provider names.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

HERE = Path(__file__).resolve().parent / "codex"
PROVIDER_KEY = "sk-codex-fake-provider-key-0123456789"
CONFIG = """
deployments:
  - model: gpt-codex
    provider: openai
    upstream_model: upstream-gpt
    base_url: {upstream}/v1
    credential: env:FAKE_PROVIDER_KEY
    allow_private_network: true
  - model: claude-codex
    provider: anthropic
    upstream_model: claude-up
    base_url: {upstream}
    credential: env:FAKE_PROVIDER_KEY
    allow_private_network: true
router:
  retries: 0
verify:
  mode: "off"
governance:
  default_prices: {{input: "0"}}
"""
COMMAND = "printf sealgate-was-here > hello.txt && echo wrote"


@pytest.fixture(scope="module")
def codex(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CLI installed by ``npm ci`` from the committed lock (integrity hashes checked by
    npm), into a directory of its own; no install script runs."""
    where = tmp_path_factory.mktemp("codex-install")
    for name in ("package.json", "package-lock.json"):
        shutil.copy(HERE / name, where / name)
    npm = shutil.which("npm")
    assert npm is not None, "npm is needed for the Codex CLI test (apt-get install npm)"
    done = subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    binary = where / "node_modules" / ".bin" / "codex"
    assert binary.exists()
    return binary


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("codex-gateway")
    config = CONFIG.format(upstream=upstream_server.base_url)
    process = GatewayProcess(workdir, config, env={"FAKE_PROVIDER_KEY": PROVIDER_KEY}).start()
    yield process
    process.stop()


@pytest.mark.parametrize("model", ["gpt-codex", "claude-codex"])
def test_codex_exec_runs_a_command_the_model_asked_for_and_finishes_through_sealgate(
    codex: Path, gateway: GatewayProcess, upstream: FakeUpstream, tmp_path: Path, model: str
) -> None:
    key = gateway.create_key([model])["key"]
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    arguments = json.dumps({"cmd": COMMAND})
    upstream.then(tool_name="exec_command", tool_arguments=arguments)  # the model's first turn
    command = [
        str(codex),
        "exec",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        "-m",
        model,
        "-c",
        "model_provider=sealgate",
        "-c",
        "model_providers.sealgate.name=Sealgate",
        "-c",
        f"model_providers.sealgate.base_url={gateway.url}/v1",
        "-c",
        "model_providers.sealgate.env_key=SEALGATE_API_KEY",
        "-c",
        "model_providers.sealgate.wire_api=responses",
        "Write the word sealgate-was-here into hello.txt.",
    ]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "CODEX_HOME": str(home),
        "SEALGATE_API_KEY": key,
    }
    done = subprocess.run(
        command,
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert (work / "hello.txt").read_text() == "sealgate-was-here"
    assert done.stdout.strip() == FakeUpstream.REPLY_TEXT  # the model's last turn
    turns = [r for r in upstream.requests if r.method == "POST"]
    assert len(turns) == 2
    if model == "gpt-codex":
        assert {r.path for r in turns} == {"/v1/responses"}
        outputs = [i for i in turns[1].body["input"] if i.get("type") == "function_call_output"]
        assert "wrote" in json.dumps(outputs)
    else:
        assert {r.path for r in turns} == {"/v1/messages"}
        results = [
            block
            for message in turns[1].body["messages"]
            if isinstance(message["content"], list)
            for block in message["content"]
            if block.get("type") == "tool_result"
        ]
        assert "wrote" in json.dumps(results)
    for seen in turns:  # the virtual key stayed at the gateway; the provider key went upstream
        assert key not in json.dumps(seen.headers)
    assert key not in gateway.stderr() and PROVIDER_KEY not in gateway.stderr()
