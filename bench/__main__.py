"""`python -m bench`: one run, every target side by side against the same nginx upstream.

    python -m bench [--quick] [--targets upstream,floor-aiohttp,...] [--sealgate-config FILE]

Targets run one after another (never at once, so they do not compete for the two cores): nginx
alone, the pass-through floor with aiohttp, the same floor with httpx, Sealgate (the spine),
Sealgate with governance on embedded defaults and on PostgreSQL + Redis, LiteLLM 1.80.0.
The table goes to stdout, progress to stderr, and the full results to bench/results/*.json.
Exit codes: 0 the run finished (whatever it measured), 2 usage or environment error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

from bench import wrk
from bench.litellm_target import start_litellm
from bench.measure import Durations, TargetResult, measure_target
from bench.procs import Children, StartFailed, free_port, wait_ready
from bench.report import combine, governance_table, governance_verdict, render_table, verdict
from bench.sealgate_target import (
    DEFAULT_TEMPLATE,
    start_sealgate,
    start_sealgate_baseline,
    start_sealgate_cache,
    start_sealgate_governance,
    start_sealgate_governance_pg,
    start_sealgate_governance_pg_workers,
    start_sealgate_observed,
    start_sealgate_observed_baseline,
    start_sealgate_quiet,
)
from bench.targets import (
    CHAT_PATH,
    RunContext,
    Target,
    chat_body,
    start_floor_aiohttp,
    start_floor_httpx,
    start_upstream_direct,
)
from bench.upstream import nginx_argv, nginx_binary, write_config

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
FULL = Durations(warmup_s=2, measure_s=8)
QUICK = Durations(warmup_s=1, measure_s=2)
UPSTREAM_READY_TIMEOUT_S = 15.0

TARGETS = (
    Target("upstream", "upstream direct (nginx, ceiling)", start_upstream_direct),
    Target("floor-aiohttp", "pass-through floor, aiohttp", start_floor_aiohttp),
    Target("floor-httpx", "pass-through floor, httpx", start_floor_httpx),
    Target("sealgate", "Sealgate (virtual-key auth)", start_sealgate),
    Target("sealgate-baseline", "Sealgate at --baseline (before)", start_sealgate_baseline),
    Target("sealgate-gov", "Sealgate + governance, embedded", start_sealgate_governance),
    Target("sealgate-gov-pg", "Sealgate + governance, PG + Redis", start_sealgate_governance_pg),
    Target(
        "sealgate-gov-pg-2w",
        "Sealgate + governance, PG + Redis, 2 workers",
        start_sealgate_governance_pg_workers,
    ),
    Target("sealgate-cache", "Sealgate, every answer a cache hit", start_sealgate_cache),
    Target("litellm", "LiteLLM 1.80.0 proxy", start_litellm),
    Target("sealgate-quiet", "Sealgate, access log and tracing off", start_sealgate_quiet),
    Target("sealgate-observed", "Sealgate, access log + tracing 100%", start_sealgate_observed),
    Target(
        "sealgate-observed-baseline",
        "Sealgate at --baseline, access log + tracing 100%",
        start_sealgate_observed_baseline,
    ),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs for a smoke test")
    parser.add_argument(
        "--targets",
        default=os.environ.get("BENCH_TARGETS"),
        help="comma-separated subset of: " + ", ".join(t.key for t in TARGETS) + " (default: "
        "all; sealgate-baseline only with --baseline)",
    )
    parser.add_argument(
        "--sealgate-config",
        type=Path,
        default=Path(os.environ.get("BENCH_SEALGATE_CONFIG", DEFAULT_TEMPLATE)),
        help="config template of the `sealgate` target ({{UPSTREAM_BASE}}, {{WORK_DIR}} are "
        "filled in; env BENCH_SEALGATE_CONFIG; default bench/sealgate.yaml.tmpl)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=os.environ.get("BENCH_BASELINE"),
        help="another Sealgate source tree (e.g. a worktree of an earlier commit) for the "
        "`sealgate-baseline` target (env BENCH_BASELINE)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every target this many times, interleaved (A B C A B C ...), and report "
        "the median round per point with the range: steadier ratios on a shared machine",
    )
    parser.add_argument("--warmup", type=float, help="seconds of warm-up before each point")
    parser.add_argument("--duration", type=float, help="seconds measured per point")
    parser.add_argument(
        "--results-dir", type=Path, default=BENCH_DIR / "results", help="where the JSON goes"
    )
    args = parser.parse_args(argv)
    known = {t.key for t in TARGETS}
    if args.targets is None:
        # the observability pair is asked for by name: --targets sealgate-quiet,sealgate-observed
        skip = {"sealgate-quiet", "sealgate-observed", "sealgate-observed-baseline"}
        skip |= {"sealgate-gov-pg-2w"}
        skip |= set() if args.baseline else {"sealgate-baseline"}
        args.targets = ",".join(t.key for t in TARGETS if t.key not in skip)
    chosen = [k.strip() for k in args.targets.split(",") if k.strip()]
    unknown = sorted(set(chosen) - known)
    if unknown or not chosen:
        parser.error(f"unknown target(s) {', '.join(unknown) or '(none given)'}")
    args.targets = chosen
    base = QUICK if args.quick else FULL
    args.durations = Durations(
        warmup_s=args.warmup if args.warmup is not None else base.warmup_s,
        measure_s=args.duration if args.duration is not None else base.measure_s,
    )
    if args.durations.measure_s < 1 or args.durations.warmup_s < 1:
        parser.error("--warmup and --duration must be at least 1 second")
    if not 1 <= args.rounds <= 9:
        parser.error("--rounds must be 1 to 9")
    return args


def ensure_tools() -> None:
    """nginx and wrk from Debian's packages, installed when missing and we may."""
    if nginx_binary() and shutil.which("wrk"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit("bench: needs nginx and wrk (apt-get install nginx-light wrk)")
    print("bench: installing nginx-light and wrk with apt-get", file=sys.stderr, flush=True)
    attempts = [
        ["apt-get", "install", "-y", "-q", "nginx-light", "wrk"],
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "nginx-light", "wrk"],
        ["apt-get", "install", "-y", "-q", "nginx", "wrk"],
    ]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in attempts:
        subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, timeout=600, check=False)
        if nginx_binary() and shutil.which("wrk"):
            return
    raise SystemExit("bench: could not install nginx and wrk with apt-get")


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts(nginx: str) -> dict[str, Any]:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "nginx": _first_line([nginx, "-v"]),
        "wrk": _first_line(["wrk", "-v"]).split(" Copyright")[0],
        "uvicorn": version("uvicorn"),
        "uvloop": version("uvloop"),
        "httptools": version("httptools"),
        "aiohttp": version("aiohttp"),
        "httpx": version("httpx"),
    }


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    ensure_tools()
    nginx = nginx_binary()
    assert nginx is not None
    work = BENCH_DIR / ".work"
    work.mkdir(parents=True, exist_ok=True)
    script = wrk.write_script(work / "chat.lua")
    facts = machine_facts(nginx)
    print("bench: " + json.dumps(facts), file=sys.stderr, flush=True)
    ctx = RunContext(
        repo=REPO,
        work=work,
        python=sys.executable,
        upstream_port=free_port(),
        sealgate_config=args.sealgate_config.resolve(),
        baseline=Path(args.baseline).resolve() if args.baseline else None,
    )
    results: list[TargetResult]
    started_at = time.monotonic()
    with Children(work / "logs") as children:
        conf = write_config(work, ctx.upstream_port)
        upstream = children.start("upstream", nginx_argv(nginx, work, conf), os.environ)
        try:
            wait_ready(
                upstream,
                ctx.upstream_base + CHAT_PATH,
                UPSTREAM_READY_TIMEOUT_S,
                method="POST",
                body=chat_body(),
            )
        except StartFailed as exc:
            raise SystemExit(f"bench: the nginx upstream did not start: {exc}") from None
        chosen = [t for t in TARGETS if t.key in args.targets]
        rounds: dict[str, list[TargetResult]] = {t.key: [] for t in chosen}
        for number in range(args.rounds):
            if args.rounds > 1:
                print(f"bench: round {number + 1} of {args.rounds}", file=sys.stderr, flush=True)
            for target in chosen:
                measured = measure_target(target, ctx, children, args.durations, script)
                rounds[target.key].append(measured)
        results = [combine(rounds[t.key]) for t in chosen]
    elapsed = time.monotonic() - started_at
    facts["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    raw = [r.as_dict() for key in rounds for r in rounds[key]] if args.rounds > 1 else []
    print_report(facts, results, args, elapsed, raw)
    return 0


def print_report(
    facts: dict[str, Any],
    results: list[TargetResult],
    args: argparse.Namespace,
    elapsed: float,
    raw: list[dict[str, Any]],
) -> None:
    table = render_table(results)
    lines = verdict(results)
    d = args.durations
    print("## Sealgate benchmark\n")
    print(
        f"Machine: {facts['nproc']} CPUs ({facts['cpu']}), Linux {facts['kernel']}, "
        f"Python {facts['python']}; load average {facts['load_average_at_start']} at start, "
        f"{facts['load_average_at_end']} at end (other work on the machine skews every number)."
    )
    print(
        f"Tools: {facts['nginx']} (1 worker), {facts['wrk']} (1 thread); servers under uvicorn "
        f"{facts['uvicorn']} with uvloop {facts['uvloop']} and httptools {facts['httptools']}, "
        "one worker each."
    )
    for r in results:
        if r.version:
            print(f"- {r.label}: {r.version}")
    rounds = (
        f" Every target ran {args.rounds} times, interleaved; each cell is the median round "
        "(ranges below the tables)."
        if args.rounds > 1
        else ""
    )
    print(
        f"\nEach point: {d.warmup_s:g} s warm-up, then {d.measure_s:g} s measured; "
        f"all on 127.0.0.1, one target at a time.{rounds}\n"
    )
    print(table)
    if lines:
        print("\nAgainst the issue's targets (Sealgate):")
        for line in lines:
            print(f"- {line}")
    governed = governance_table(results)
    governed_lines = governance_verdict(results)
    if governed is not None:
        print("\nGovernance on (limits, budgets, spend records) against the spine of this run:\n")
        print(governed)
    if governed_lines:
        print("\nAgainst the governance issue's bound:")
        for line in governed_lines:
            print(f"- {line}")
    if args.rounds > 1:
        print("\nRanges over the rounds:")
        for r in results:
            spread = [n for n in r.notes if " rounds: " in n]
            if spread:
                print(f"- {r.label}: " + "; ".join(n.split(": ", 1)[1] for n in spread))
    print(f"\nRun took {elapsed:.0f} s.")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.results_dir / f"bench-{stamp}.json"
    payload = {
        "machine": facts,
        "durations": {"warmup_s": d.warmup_s, "measure_s": d.measure_s},
        "rounds": args.rounds,
        "every_round": raw,
        "sealgate_config": str(args.sealgate_config),
        "results": [r.as_dict() for r in results],
        "verdict": lines + governed_lines,
        "table": table,
        "governance_table": governed,
        "elapsed_s": round(elapsed, 1),
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nResults: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("bench: interrupted; every server it started has been stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
