"""The Sealgate targets: `sealgate serve` with virtual-key auth on, one process.

- `sealgate`: the spine, no limits or budgets (bench/sealgate.yaml.tmpl, or --sealgate-config).
- `sealgate-gov`: governance on embedded defaults (SQLite, in-process counters): the key has a
  team, both have RPM/TPM limits, the team a daily budget, the deployment its own limits and a
  price, so every request reserves, settles and leaves a spend record.
- `sealgate-baseline`: the spine served by another source tree (`--baseline DIR`, a checkout of
  an earlier commit) with the same interpreter and packages: before and after in one run.
- `sealgate-gov-pg`: the same on PostgreSQL (database `sealgate_bench`, dropped and made afresh)
  and Redis counters.

A config is a template in which {{UPSTREAM_BASE}} and {{WORK_DIR}} are replaced; it must publish
the model `bench-model`. The admin credential and the virtual key are made up for this run,
passed only through the environment and the admin API, and never written to a file.
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
GOVERNANCE_TEMPLATE = Path(__file__).with_name("sealgate-governance.yaml.tmpl")
GOVERNANCE_PG_TEMPLATE = Path(__file__).with_name("sealgate-governance-pg.yaml.tmpl")
QUIET_TEMPLATE = Path(__file__).with_name("sealgate-quiet.yaml.tmpl")
OBSERVED_TEMPLATE = Path(__file__).with_name("sealgate-observed.yaml.tmpl")
CACHE_TEMPLATE = Path(__file__).with_name("sealgate-cache.yaml.tmpl")
BENCH_DATABASE = "sealgate_bench"
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def sealgate_command(python: str) -> str | None:
    """The `sealgate` script beside the interpreter the harness runs with, else on PATH."""
    beside = Path(python).parent / "sealgate"
    if beside.is_file():
        return str(beside)
    return shutil.which("sealgate")


def render_config(
    template: Path, ctx: RunContext, name: str, more: dict[str, str] | None = None
) -> Path:
    try:
        text = template.read_text()
    except OSError as exc:
        raise StartFailed(f"cannot read Sealgate config {template}: {exc.strerror}") from None
    text = text.replace("{{UPSTREAM_BASE}}", ctx.upstream_base).replace(
        "{{WORK_DIR}}", str(ctx.work)
    )
    for placeholder, value in (more or {}).items():
        text = text.replace("{{" + placeholder + "}}", value)
    out = ctx.work / f"{name}.yaml"
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


def sealgate_version(ctx: RunContext, source: Path | None = None) -> str:
    source = source or _source_dir(ctx.repo)
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
    return _start(ctx, children, "sealgate", ctx.sealgate_config, governed=False)


def start_sealgate_baseline(ctx: RunContext, children: Children) -> Started:
    if ctx.baseline is None:
        raise StartFailed("no --baseline source tree given")
    if not (ctx.baseline / "gateway" / "__main__.py").is_file():
        raise StartFailed(f"{ctx.baseline} holds no gateway package")
    # `python -m gateway` run from the baseline tree finds that tree's package first.
    command = [ctx.python, "-m", "gateway"]
    return _start(
        ctx, children, "sealgate-baseline", ctx.sealgate_config, False, command, ctx.baseline
    )


def start_sealgate_governance(ctx: RunContext, children: Children) -> Started:
    return _start(ctx, children, "sealgate-gov", GOVERNANCE_TEMPLATE, governed=True)


def start_sealgate_governance_pg(ctx: RunContext, children: Children) -> Started:
    fresh_database()
    return _start(ctx, children, "sealgate-gov-pg", GOVERNANCE_PG_TEMPLATE, governed=True)


def start_sealgate_quiet(ctx: RunContext, children: Children) -> Started:
    return _start(ctx, children, "sealgate-quiet", QUIET_TEMPLATE, governed=False)


def start_sealgate_observed(ctx: RunContext, children: Children) -> Started:
    """Access log and tracing at full sampling on, with an OTLP/HTTP sink on loopback."""
    port = free_port()
    argv = [ctx.python, "-m", "bench.otlp_sink", str(port)]
    sink = children.start("otlp-sink", argv, child_env({}), cwd=ctx.repo)
    base = f"http://127.0.0.1:{port}"
    wait_ready(sink, base + "/", READY_TIMEOUT_S)
    return _start(
        ctx, children, "sealgate-observed", OBSERVED_TEMPLATE, False, more={"OTLP_BASE": base}
    )


def start_sealgate_observed_baseline(ctx: RunContext, children: Children) -> Started:
    """`sealgate-observed` served by the `--baseline` source tree: before and after in one run."""
    if ctx.baseline is None:
        raise StartFailed("no --baseline source tree given")
    if not (ctx.baseline / "gateway" / "__main__.py").is_file():
        raise StartFailed(f"{ctx.baseline} holds no gateway package")
    port = free_port()
    argv = [ctx.python, "-m", "bench.otlp_sink", str(port)]
    sink = children.start("otlp-sink", argv, child_env({}), cwd=ctx.repo)
    base = f"http://127.0.0.1:{port}"
    wait_ready(sink, base + "/", READY_TIMEOUT_S)
    command = [ctx.python, "-m", "gateway"]
    return _start(
        ctx,
        children,
        "sealgate-observed-baseline",
        OBSERVED_TEMPLATE,
        False,
        command,
        ctx.baseline,
        more={"OTLP_BASE": base},
    )


def start_sealgate_cache(ctx: RunContext, children: Children) -> Started:
    return _start(ctx, children, "sealgate-cache", CACHE_TEMPLATE, governed=False)


def start_sealgate_governance_pg_workers(ctx: RunContext, children: Children) -> Started:
    """The PostgreSQL + Redis target served by two worker processes on one port (issue 23)."""
    fresh_database()
    return _start(
        ctx, children, "sealgate-gov-pg-2w", GOVERNANCE_PG_TEMPLATE, governed=True, workers=2
    )


def fresh_database() -> None:
    """Drop and create `sealgate_bench` so the run starts with an empty spend table."""
    try:
        import psycopg
    except ImportError:
        raise StartFailed("psycopg is not installed") from None
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {BENCH_DATABASE}")
    except psycopg.Error as exc:
        raise StartFailed(f"PostgreSQL on 127.0.0.1:5432: {type(exc).__name__}") from None


def _start(
    ctx: RunContext,
    children: Children,
    name: str,
    template: Path,
    governed: bool,
    command: list[str] | None = None,
    source: Path | None = None,
    more: dict[str, str] | None = None,
    workers: int = 1,
) -> Started:
    if command is None:
        found = sealgate_command(ctx.python)
        if found is None:
            raise StartFailed(f"no `sealgate` command beside {ctx.python} or on PATH")
        command = [found]
    config = render_config(template, ctx, name, more)
    data_dir = ctx.work / f"{name}-data"
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
    argv = [*command, "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", str(workers)] if workers > 1 else []
    child = children.start(name, argv, env, cwd=source or ctx.repo)
    base = f"http://127.0.0.1:{port}"
    wait_ready(child, base + "/health/ready", READY_TIMEOUT_S)
    spec: dict[str, object] = {"models": ["bench-model"]}
    notes = [f"config {template}", f"python {sys.version.split()[0]}"]
    if governed:
        spec.update(governed_key(base, admin_key))
        notes.append("key with team, RPM/TPM limits, team budget, deployment limits and price")
    created = admin_post(base, admin_key, "/admin/keys", spec)
    key = created.get("key")
    if not isinstance(key, str):
        raise StartFailed("POST /admin/keys answered without a `key`")
    return Started(
        url=base + CHAT_PATH,
        auth=str(key),
        rss_child=child,
        version=sealgate_version(ctx, source),
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
