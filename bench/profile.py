"""`python -m bench.profile`: where a request's time goes, from py-spy samples of a running target.

    python -m bench.profile [--target sealgate] [--connections 16] [--seconds 15] [--top 25]
                            [--baseline DIR]  # with --target sealgate-baseline: DIR's code

Starts the nginx upstream and one bench target (any key of `python -m bench`, default the spine),
drives it with wrk at a fixed concurrency, and meanwhile samples the server process with
`py-spy record` (from the dev lock; it reads the process from outside, so the target runs
unchanged). The samples (collapsed stacks, kept in bench/.work/profile-<target>.txt) are then
summed two ways and printed as markdown: by area (the first frame of the stack, leaf first,
that falls in one of `AREAS`) and by function (self and inclusive share). The server's req/s
under the profiler is printed too: sampling costs the target a little, so compare profiles with
each other, not with `python -m bench`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from bench import wrk
from bench.__main__ import BENCH_DIR, REPO, TARGETS, UPSTREAM_READY_TIMEOUT_S, ensure_tools
from bench.procs import Children, StartFailed, child_env, free_port, wait_ready
from bench.targets import CHAT_PATH, RunContext, chat_body
from bench.upstream import nginx_argv, nginx_binary, write_config

# Areas of a request's cost, by where the sampled frame's code lives. The first rule that
# matches a frame, walking from the leaf towards the root, names the sample's area.
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logging (access log line, redaction, JSON, write)", ("logging/", "gateway/logs.py")),
    ("JSON (parse, serialise)", ("json/", "gateway/api/bodies.py")),
    ("metrics", ("gateway/metrics.py",)),
    ("tracing hooks", ("gateway/tracing", "opentelemetry/")),
    ("upstream client (aiohttp)", ("aiohttp/", "yarl/", "multidict/", "gateway/providers/")),
    ("auth", ("gateway/auth", "gateway/tokens.py", "gateway/store/")),
    ("governance", ("gateway/governance/",)),
    ("routing", ("gateway/routing/",)),
    ("cache", ("gateway/cache/", "gateway/api/cached.py")),
    ("validation", ("gateway/api/validation.py",)),
    ("access layer, guard, ASGI glue", ("gateway/api/",)),
    ("ASGI server (uvicorn, httptools)", ("uvicorn/", "httptools/")),
    ("event loop (uvloop, asyncio)", ("uvloop/", "asyncio/")),
)
OTHER = "other"
IDLE = "idle (waiting in the event loop)"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--target", default="sealgate", choices=[t.key for t in TARGETS])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25, help="functions listed")
    parser.add_argument("--sealgate-config", type=Path, default=BENCH_DIR / "sealgate.yaml.tmpl")
    parser.add_argument(
        "--baseline", type=Path, help="the source tree `--target sealgate-baseline` serves"
    )
    return parser.parse_args(argv)


def py_spy() -> str:
    here = Path(sys.executable).parent / "py-spy"
    found = str(here) if here.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("bench.profile: py-spy not found (make install-dev)")
    return found


def frames_of(line: str) -> tuple[list[str], int]:
    """One collapsed-stack line (`root;...;leaf COUNT`): its frames, root first, and count."""
    stack, _, count = line.rstrip("\n").rpartition(" ")
    return stack.split(";"), int(count)


def area_of(frames: list[str]) -> str:
    """The area of one sample: the first frame, leaf first, that one of `AREAS` claims."""
    if frames and ("select" in frames[-1] or "epoll" in frames[-1]):
        return IDLE
    for frame in reversed(frames):
        for name, marks in AREAS:
            if any(mark in frame for mark in marks):
                return name
    return OTHER


def summarise(lines: Iterable[str], top: int) -> str:
    areas: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in lines:
        if not line.strip():
            continue
        frames, count = frames_of(line)
        total += count
        areas[area_of(frames)] += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples"
    busy = total - areas[IDLE]
    out = [f"{total} samples, {busy} of them busy ({100 * busy / total:.0f}%)", ""]
    out += ["| area | share of busy samples |", "|---|---|"]
    for name, count in areas.most_common():
        if name != IDLE:
            out.append(f"| {name} | {100 * count / max(busy, 1):.1f}% |")
    out += ["", "| function (self) | self % | inclusive % |", "|---|---|---|"]
    for frame, count in own.most_common(top):
        out.append(
            f"| `{frame}` | {100 * count / total:.1f} | {100 * inclusive[frame] / total:.1f} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
    target = next(t for t in TARGETS if t.key == args.target)
    out = work / f"profile-{args.target}.txt"
    with Children(work / "logs") as children:
        conf = write_config(work, ctx.upstream_port)
        upstream = children.start("upstream", nginx_argv(nginx, work, conf), os.environ)
        try:
            wait_ready(
                upstream,
                ctx.upstream_base + CHAT_PATH,
                UPSTREAM_READY_TIMEOUT_S,
                "POST",
                chat_body(),
            )
            started = target.start(ctx, children)
        except StartFailed as exc:
            raise SystemExit(f"bench.profile: {exc}") from None
        assert started.rss_child is not None
        env = child_env({"BENCH_AUTH": started.auth})
        wrk.run_wrk(started.url, args.connections, 2, script, env)  # warm-up
        result: list[wrk.WrkResult] = []
        load = threading.Thread(
            target=lambda: result.append(
                wrk.run_wrk(started.url, args.connections, args.seconds, script, env)
            )
        )
        load.start()
        spy = [
            py_spy(), "record", "--pid", str(started.rss_child.proc.pid), "--format", "raw",
            "--rate", str(args.rate), "--duration", str(int(args.seconds) - 1),
            "--nonblocking", "--function", "--gil", "--output", str(out),
        ]  # fmt: skip
        subprocess.run(spy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
                       check=False)  # fmt: skip
        load.join()
    if not out.exists():
        raise SystemExit("bench.profile: py-spy wrote no samples (ptrace not permitted?)")
    rps = f"{result[0].requests / result[0].duration_s:,.0f} req/s" if result else "no wrk result"
    print(f"## {args.target} at {args.connections} connections ({rps} under the profiler)\n")
    print(summarise(out.read_text().splitlines(), args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
