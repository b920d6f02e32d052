"""The LiteLLM 1.80.0 proxy target, installed by the harness into a venv of its own.

The venv (bench/.work/litellm-venv) is built from the hash-locked bench/litellm.lock with
`pip install --require-hashes --only-binary :all:` and reused while the lock is unchanged. The
proxy runs with a master key (so auth is on), no database, one worker, telemetry off, quiet logs
(LITELLM_LOG=ERROR, uvicorn access log off) and the bundled model cost map (no fetch at start-up).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import subprocess
from pathlib import Path

from bench.procs import Children, StartFailed, child_env, free_port, wait_ready
from bench.targets import CHAT_PATH, RunContext, Started

LOCK = Path(__file__).with_name("litellm.lock")
INSTALL_TIMEOUT_S = 900
READY_TIMEOUT_S = 120.0

CONFIG = """\
# Written by bench/litellm_target.py for one benchmark run.
model_list:
  - model_name: bench-model
    litellm_params:
      model: openai/bench-upstream
      api_base: "{upstream_base}/v1"
      api_key: os.environ/BENCH_UPSTREAM_KEY
litellm_settings:
  set_verbose: false
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
"""

# uvicorn's logging: warnings and errors only, no access log (LiteLLM passes this file to uvicorn).
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        "uvicorn.error": {"level": "WARNING"},
        "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
    },
}


def _lock_digest() -> str:
    return hashlib.sha256(LOCK.read_bytes()).hexdigest()


def ensure_venv(work: Path, base_python: str, log: Path) -> Path:
    """The LiteLLM venv's directory, installed from the lock unless already current."""
    venv = work / "litellm-venv"
    marker = venv / ".bench-installed"
    digest = _lock_digest()
    if marker.is_file() and marker.read_text().strip() == digest:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    steps = [
        [base_python, "-m", "venv", str(venv)],
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--require-hashes",
            "--no-deps",
            "--only-binary",
            ":all:",
            "-r",
            str(LOCK),
        ],
    ]
    with log.open("wb") as out:
        for argv in steps:
            try:
                done = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=child_env(),
                    timeout=INSTALL_TIMEOUT_S,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise StartFailed(f"LiteLLM install failed: {exc}") from None
            if done.returncode != 0:
                raise StartFailed(f"LiteLLM install failed (exit {done.returncode}, see {log})")
    marker.write_text(digest + "\n")
    return venv


def litellm_version(venv: Path) -> str:
    try:
        done = subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "from importlib.metadata import version; print(version('litellm'))",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return "litellm " + (done.stdout.strip() or "unknown")


def start_litellm(ctx: RunContext, children: Children) -> Started:
    venv = ensure_venv(ctx.work, ctx.base_python, ctx.work / "litellm-install.log")
    config = ctx.work / "litellm-config.yaml"
    config.write_text(CONFIG.format(upstream_base=ctx.upstream_base))
    log_config = ctx.work / "litellm-log-config.json"
    log_config.write_text(json.dumps(LOG_CONFIG))
    master_key = "sk-bench-" + secrets.token_urlsafe(24)
    port = free_port()
    env = child_env(
        {
            "LITELLM_MASTER_KEY": master_key,
            "BENCH_UPSTREAM_KEY": ctx.upstream_key,
            "LITELLM_LOG": "ERROR",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_MODE": "PRODUCTION",
        }
    )
    for name in ("DATABASE_URL", "DIRECT_URL", "DATABASE_HOST", "REDIS_HOST", "REDIS_URL"):
        env.pop(name, None)
    argv = [
        str(venv / "bin" / "litellm"),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
        "--telemetry",
        "False",
        "--log_config",
        str(log_config),
    ]
    child = children.start("litellm", argv, env, cwd=ctx.work)
    base = f"http://127.0.0.1:{port}"
    wait_ready(child, base + "/health/liveliness", READY_TIMEOUT_S)
    return Started(
        url=base + CHAT_PATH, auth=master_key, rss_child=child, version=litellm_version(venv)
    )
