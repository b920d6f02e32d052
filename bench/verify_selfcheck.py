"""The start-up check's wall time, and the watch's cost and detection latency.

Usage: python -m bench.verify_selfcheck [--target-python PATH] [--lock FILE]... [--runs N]
                                        [--watch-seconds S] [--interval S]

The check: each run is a fresh ``<target> -I -S -B`` interpreter running the launcher's own
``check`` (gateway/boot.py, as ``serve`` runs it before the gateway is imported: gather in
process, bind every file to the install manifest, read the config's verify section, then
the policy bundle, hooks and lock; outside Sealgate's layout, hooks + RECORD + lock), timed
from loading the launcher to its verdict. Defaults: this interpreter, requirements-dev.lock +
requirements-build.lock, 5 runs. For the runtime venv, after ``make install``:
``--target-python .venv/bin/python --lock requirements.lock``; the target there is at most 1 s
(median).

The watch, over the target's import roots: CPU used by an idle watch (inotify, and the stat
scan alone at ``--interval``) as a share of one core over ``--watch-seconds``, and the time
from writing a new ``.pth`` to the watch reporting it (median of ``--runs``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from verify import selfcheck, watch
from verify.facts import gather

REPO = Path(__file__).resolve().parent.parent
PROBE = """
import json, runpy, sys, time
stdlib = [p for p in sys.path if p]
start = time.perf_counter()
boot = runpy.run_path({boot!r}, run_name="sealgate_bench")
sys.dont_write_bytecode = True
sys.path[:] = [*stdlib, boot["PROJECT_ROOT"]]
trust_bytecode = boot["source_only"](boot["PROJECT_ROOT"])
from verify import facts
facts.set_stdlib_path(stdlib)
verdict = boot["check"](["serve", "--config", {config!r}], stdlib, trust_bytecode)
print(json.dumps({{"seconds": time.perf_counter() - start, "bound": verdict.bound,
    "files": len(verdict.facts.files), "problems": len(verdict.report.problems)}}))
"""
CONFIG = """deployments:
  - model: mock-gpt
    provider: mock
verify:
  mode: warn
  locks: {locks}
  policies_dir: {policies}
"""


def check_once(target: str, root: str, locks: list[str], policies: str) -> dict[str, float]:
    """One launcher check in a fresh ``-I -S -B`` interpreter of the target: gateway/boot.py's
    own ``check``, as ``serve`` runs it before the gateway is imported."""
    absolute = [str(Path(p).absolute()) for p in locks]
    with tempfile.TemporaryDirectory() as work:
        config = Path(work) / "config.yaml"
        config.write_text(CONFIG.format(locks=json.dumps(absolute), policies=json.dumps(policies)))
        boot = str(Path(root) / "gateway" / "boot.py")
        code = PROBE.format(boot=boot, config=str(config))
        done = subprocess.run(
            [target, "-I", "-S", "-B", "-c", code], capture_output=True, text=True, check=False
        )
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def project_root(target: str) -> str:
    """Where the target's launcher is: its site-packages in Sealgate's layout, else here."""
    for site in sorted(Path(target).parent.parent.glob("lib/python3*/site-packages")):
        if (site / "gateway" / "boot.py").is_file():
            return str(site)
    return str(REPO)


async def _idle(w: watch.Watch, interval: float, seconds: float) -> None:
    task = asyncio.create_task(watch.run(w, interval, lambda found: None))
    await asyncio.sleep(seconds)
    task.cancel()


def idle_cpu(tree: watch.Tree, interval: float, seconds: float, inotify: bool) -> float:
    w = watch.Watch(tree, use_inotify=inotify)
    if inotify and w.inotify is None:
        return float("nan")
    cpu = time.process_time()
    asyncio.run(_idle(w, interval, seconds))
    return (time.process_time() - cpu) / seconds


async def _latency(w: watch.Watch, interval: float, probe: Path) -> float:
    seen: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def report(found: list[object]) -> None:
        if not seen.done() and any(getattr(f, "subject", "") == str(probe) for f in found):
            seen.set_result(time.perf_counter())

    task = asyncio.create_task(watch.run(w, interval, report))
    await asyncio.sleep(1.0)  # past the first scan
    start = time.perf_counter()
    probe.write_text("import os\n")
    try:
        return await asyncio.wait_for(seen, timeout=interval * 3 + 10) - start
    finally:
        task.cancel()


def latency(facts_tree: watch.Tree, root: str, interval: float, inotify: bool) -> float:
    probe = Path(root) / f"zz-bench-{os.getpid()}-{time.monotonic_ns()}.pth"
    try:
        tree = watch.Tree(facts_tree.roots, facts_tree.stamps, facts_tree.hashes, True)
        return asyncio.run(_latency(watch.Watch(tree, use_inotify=inotify), interval, probe))
    finally:
        probe.unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-python", default=sys.executable)
    parser.add_argument("--lock", action="append", default=None)
    parser.add_argument("--policies", default=str(REPO / "policies"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--watch-seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args()
    args.target_python = os.path.abspath(args.target_python)
    locks = args.lock or [
        str(REPO / "requirements-dev.lock"),
        str(REPO / "requirements-build.lock"),
    ]
    root = project_root(args.target_python)
    times = []
    for i in range(args.runs):
        run = check_once(args.target_python, root, locks, args.policies)
        times.append(run["seconds"])
        print(
            f"check {i + 1}: {run['seconds']:.3f} s, bound={run['bound']}, "
            f"files={run['files']}, problems={run['problems']}"
        )
    print(f"check: median {statistics.median(times):.3f} s, max {max(times):.3f} s")

    facts = gather(args.target_python)
    tree = selfcheck.tree(facts, hashes=facts.files)
    files = len(tree.stamps)
    print(f"watch over {len(tree.roots)} roots, {files} files:")
    for inotify in (True, False):
        share = idle_cpu(tree, args.interval, args.watch_seconds, inotify)
        kind = "inotify + backstop scan" if inotify else f"stat scan every {args.interval:g} s"
        print(f"  idle CPU, {kind}: {share * 100:.3f} % of one core over {args.watch_seconds:g} s")
    writable = tree.roots[0]
    for inotify in (True, False):
        seen = [latency(tree, writable, args.interval, inotify) for _ in range(args.runs)]
        kind = "inotify" if inotify else f"stat scan every {args.interval:g} s"
        print(
            f"  new .pth seen after ({kind}): median {statistics.median(seen):.3f} s, "
            f"max {max(seen):.3f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
