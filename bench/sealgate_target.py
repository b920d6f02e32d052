"""The Sealgate target: `sealgate serve` with virtual-key auth on, one process.

The config is a template (bench/sealgate.yaml.tmpl by default, or --sealgate-config FILE) in which
{{UPSTREAM_BASE}} and {{WORK_DIR}} are replaced; it must publish the model `bench-model`. The
admin credential and the virtual key are made up for this run, passed only through the
environment and the admin API, and never written to a file.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from bench.procs import Children, StartFailed, child_env, free_port, http_request, wait_ready
from bench.targets import CHAT_PATH, RunContext, Started, dist_version

READY_TIMEOUT_S = 60.0
DEFAULT_TEMPLATE = Path(__file__).with_name("sealgate.yaml.tmpl")


def sealgate_command(python: str) -> str | None:
    """The `sealgate` script beside the interpreter the harness runs with, else on PATH."""
    beside = Path(python).parent / "sealgate"
    if beside.is_file():
        return str(beside)
    return shutil.which("sealgate")


def render_config(template: Path, ctx: RunContext) -> Path:
    try:
        text = template.read_text()
    except OSError as exc:
        raise StartFailed(f"cannot read Sealgate config {template}: {exc.strerror}") from None
    text = text.replace("{{UPSTREAM_BASE}}", ctx.upstream_base).replace(
        "{{WORK_DIR}}", str(ctx.work)
    )
    out = ctx.work / "sealgate.yaml"
    out.write_text(text)
    return out


def _source_dir(default: Path) -> Path:
    """Where the installed `sealgate` came from: the editable install's directory, if it is one."""
    try:
        text = metadata.distribution("sealgate").read_text("direct_url.json")
        url = str(json.loads(text or "{}").get("url", ""))
    except (metadata.PackageNotFoundError, ValueError, AttributeError):
        return default
    return Path(url.removeprefix("file://")) if url.startswith("file://") else default


def sealgate_version(ctx: RunContext) -> str:
    source = _source_dir(ctx.repo)
    try:
        rev = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        rev = ""
    where = f" from {source} @ {rev}" if rev else ""
    return f"sealgate {dist_version('sealgate')}{where}"


def start_sealgate(ctx: RunContext, children: Children) -> Started:
    command = sealgate_command(ctx.python)
    if command is None:
        raise StartFailed(f"no `sealgate` command beside {ctx.python} or on PATH")
    config = render_config(ctx.sealgate_config, ctx)
    data_dir = ctx.work / "sealgate-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True, mode=0o700)
    admin_key = "sga-bench-" + secrets.token_urlsafe(24)
    port = free_port()
    env = child_env(
        {
            "SEALGATE_ADMIN_KEY": admin_key,
            "SEALGATE_DATA_DIR": str(data_dir),
            "BENCH_UPSTREAM_KEY": ctx.upstream_key,
        }
    )
    argv = [command, "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    child = children.start("sealgate", argv, env, cwd=ctx.repo)
    base = f"http://127.0.0.1:{port}"
    wait_ready(child, base + "/health/ready", READY_TIMEOUT_S)
    spec: dict[str, object] = {"models": ["bench-model"]}
    notes = [f"config {ctx.sealgate_config}", f"python {sys.version.split()[0]}"]
    if ctx.sealgate_governance:
        spec.update(governed_key(base, admin_key))
        notes.append("key with team, RPM/TPM limits and key+team budgets")
    created = admin_post(base, admin_key, "/admin/keys", spec)
    key = created.get("key")
    if not isinstance(key, str):
        raise StartFailed("POST /admin/keys answered without a `key`")
    return Started(
        url=base + CHAT_PATH,
        auth=str(key),
        rss_child=child,
        version=sealgate_version(ctx),
        notes=notes,
    )


GOVERNED_LIMIT = 10**9  # requests or tokens per minute: never reached, always reserved


def admin_post(base: str, admin_key: str, path: str, spec: dict[str, object]) -> dict[str, object]:
    status, body = http_request(
        "POST",
        base + path,
        json.dumps(spec).encode(),
        {"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"},
    )
    if status not in (200, 201):
        raise StartFailed(f"POST {path} answered HTTP {status}")
    try:
        answer = json.loads(body)
    except ValueError:
        raise StartFailed(f"POST {path} answered with invalid JSON") from None
    if not isinstance(answer, dict):
        raise StartFailed(f"POST {path} answered with no object")
    return answer


def governed_key(base: str, admin_key: str) -> dict[str, object]:
    """A team with RPM/TPM limits and a daily budget; the key's own limits; its budget is made
    after the key (the caller does not need it: a team budget already applies to every call).
    Every request then reserves and settles key and team request, token and budget counters."""
    team = admin_post(
        base,
        admin_key,
        "/admin/teams",
        {"name": "bench", "rpm_limit": GOVERNED_LIMIT, "tpm_limit": GOVERNED_LIMIT},
    )
    admin_post(
        base,
        admin_key,
        "/admin/budgets",
        {"scope": "team", "scope_id": team["id"], "period": "daily", "max_usd": "1000000"},
    )
    return {"team_id": team["id"], "rpm_limit": GOVERNED_LIMIT, "tpm_limit": GOVERNED_LIMIT}
