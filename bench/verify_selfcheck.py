"""Wall time of the start-up self-check (``verify.selfcheck.run``) on a locked environment.

Usage: python -m bench.verify_selfcheck [--target-python PATH] [--lock FILE]... [--runs N]
Defaults: this interpreter, requirements-dev.lock + requirements-build.lock, 5 runs. Prints the
time of each run, then median and max, then the same for the periodic re-check; the target is
at most 1 s for the runtime environment.
The first run may read files from disk; later runs are from the page cache.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from verify import selfcheck

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-python", default=sys.executable)
    parser.add_argument("--lock", action="append", default=None)
    parser.add_argument("--policies", default=str(REPO / "policies"))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    locks = [
        Path(p)
        for p in (args.lock or [REPO / "requirements-dev.lock", REPO / "requirements-build.lock"])
    ]
    times = []
    for i in range(args.runs):
        start = time.perf_counter()
        report = selfcheck.run(args.target_python, locks, Path(args.policies))
        times.append(time.perf_counter() - start)
        print(
            f"run {i + 1}: {times[-1]:.3f} s, clean={report.clean}, results={len(report.findings)}"
        )
    print(f"median {statistics.median(times):.3f} s, max {max(times):.3f} s over {args.runs} runs")
    baseline = selfcheck.Baseline.capture(args.target_python)
    rechecks = []
    for _ in range(args.runs):
        start = time.perf_counter()
        changes = baseline.changes()
        rechecks.append(time.perf_counter() - start)
    print(
        f"periodic re-check (Baseline.changes): median {statistics.median(rechecks):.3f} s, "
        f"max {max(rechecks):.3f} s, {len(changes)} changes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
