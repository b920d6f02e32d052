"""`python -m bench.cpu`: CPU time per request of each target, a cost a loaded machine hardly moves.

    python -m bench.cpu [--targets floor-aiohttp,sealgate] [--baseline DIR] [--rounds 3]
                        [--connections 16] [--seconds 8]

On a shared 2-core machine whose load average is many times its core count, req/s and latency
measure the neighbours as much as the target. The CPU time the server's process tree spends per
answered request does not depend on how long it waited for a core, so this runs each target (any
key of `python -m bench`, interleaved over rounds) under wrk at one concurrency and reads the
tree's user + system time from /proc before and after: microseconds of CPU per request, and the
floor's cost over the target's, which is the req/s ratio the two would have if each had one core
to itself (one process each: CPU-bound at that point). Caches and clock frequency still move it
by a few percent. wrk and nginx are not counted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from bench import wrk
from bench.__main__ import BENCH_DIR, REPO, TARGETS, UPSTREAM_READY_TIMEOUT_S, ensure_tools
from bench.measure import check_answer
from bench.procs import Children, StartFailed, child_env, free_port, wait_ready
from bench.targets import CHAT_PATH, RunContext, chat_body
from bench.upstream import nginx_argv, nginx_binary, write_config

TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants (all their threads), from /proc."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS)
    tree = {pid}
    grew = True
    while grew:
        grew = False
        for child, (parent, _) in stats.items():
            if parent in tree and child not in tree:
                tree.add(child)
                grew = True
    return sum(stats[p][1] for p in tree if p in stats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__)
    parser.add_argument("--targets", default="floor-aiohttp,sealgate")
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--sealgate-config", type=Path, default=BENCH_DIR / "sealgate.yaml.tmpl")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.targets.split(",") if k.strip()]
    chosen = [t for key in keys for t in TARGETS if t.key == key]
    if len(chosen) != len(keys):
        parser.error("unknown target")
    ensure_tools()
    nginx = nginx_binary()
    assert nginx is not None
    work = BENCH_DIR / ".work"
    work.mkdir(parents=True, exist_ok=True)
    script = wrk.write_script(work / "chat.lua")
    ctx = RunContext(
        repo=REPO,
        work=work,
        python=sys.executable,
        upstream_port=free_port(),
        sealgate_config=args.sealgate_config.resolve(),
        baseline=args.baseline.resolve() if args.baseline else None,
    )
    load_before = os.getloadavg()
    cost: dict[str, list[float]] = {t.key: [] for t in chosen}
    rps: dict[str, list[float]] = {t.key: [] for t in chosen}
    with Children(work / "logs") as children:
        conf = write_config(work, ctx.upstream_port)
        upstream = children.start("upstream", nginx_argv(nginx, work, conf), os.environ)
        try:
            wait_ready(
                upstream, ctx.upstream_base + CHAT_PATH, UPSTREAM_READY_TIMEOUT_S, "POST",
                chat_body(),
            )  # fmt: skip
        except StartFailed as exc:
            raise SystemExit(f"bench.cpu: nginx: {exc}") from None
        for number in range(args.rounds):
            print(f"bench.cpu: round {number + 1}", file=sys.stderr, flush=True)
            for target in chosen:
                running = set(id(c) for c in children.running())
                try:
                    started = target.start(ctx, children)
                    check_answer(started.url, started.auth)
                    assert started.rss_child is not None
                    pid = started.rss_child.proc.pid
                    env = child_env({"BENCH_AUTH": started.auth})
                    wrk.run_wrk(started.url, args.connections, 2, script, env)
                    before = tree_cpu_seconds(pid)
                    point = wrk.run_wrk(started.url, args.connections, args.seconds, script, env)
                    used = tree_cpu_seconds(pid) - before
                    if point.errors:
                        print(f"bench.cpu: {target.key}: {point.errors} errors", file=sys.stderr)
                    else:
                        cost[target.key].append(used / point.requests * 1e6)
                        rps[target.key].append(point.requests / point.duration_s)
                except (StartFailed, wrk.WrkFailed) as exc:
                    print(f"bench.cpu: {target.key}: not measured: {exc}", file=sys.stderr)
                finally:
                    for child in children.running():
                        if id(child) not in running:
                            children.stop(child)
    load_after = os.getloadavg()
    print(f"## CPU per request at {args.connections} connections\n")
    print(
        f"Load average {[round(x, 2) for x in load_before]} before, "
        f"{[round(x, 2) for x in load_after]} after; {args.rounds} interleaved rounds of "
        f"{args.seconds:g} s; median (range).\n"
    )
    floor = statistics.median(cost["floor-aiohttp"]) if cost.get("floor-aiohttp") else None
    print("| target | CPU us per request | floor's CPU / target's | req/s (loaded) |")
    print("|---|---|---|---|")
    for target in chosen:
        got = cost[target.key]
        if not got:
            print(f"| {target.label} | not measured | - | - |")
            continue
        mid = statistics.median(got)
        ratio = f"{floor / mid:.2f}" if floor else "-"
        print(
            f"| {target.label} | {mid:.0f} ({min(got):.0f}-{max(got):.0f}) | {ratio} "
            f"| {statistics.median(rps[target.key]):,.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
