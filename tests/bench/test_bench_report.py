"""The benchmark report: ratios, invalid points and the verdict against the issue's targets."""

import os
import subprocess
import sys

from bench.measure import TargetResult
from bench.procs import tree_rss_bytes
from bench.report import combine, governance_table, governance_verdict, render_table, verdict
from bench.wrk import WrkResult


def point(connections, rps, p50_ms=1.0, non_2xx=0):
    return WrkResult(
        connections=connections,
        requests=int(rps * 8),
        duration_s=8.0,
        p50_ms=p50_ms,
        p99_ms=p50_ms * 2,
        mean_ms=p50_ms,
        max_ms=p50_ms * 3,
        non_2xx=non_2xx,
        socket_errors=0,
    )


def result(key, rps16, rps64, p50, non_2xx_at_64=0):
    return TargetResult(
        key=key,
        label=key,
        points={
            16: point(16, rps16),
            64: point(64, rps64, non_2xx=non_2xx_at_64),
            1: point(1, 100, p50),
        },
        rss_bytes=100 * 2**20,
    )


def row(table, key):
    return next(line for line in table.splitlines() if line.startswith(f"| {key} |"))


def test_ratios_are_against_litellm_and_added_latency_against_the_upstream():
    results = [
        result("upstream", 100_000, 100_000, 0.03),
        result("sealgate", 3000, 2500, 0.40),
        result("litellm", 200, 250, 5.0),
    ]
    cells = [c.strip() for c in row(render_table(results), "sealgate").split("|")[1:-1]]
    assert cells == [
        "sealgate",
        "3,000",
        "2,500",
        "0.400",
        "0.800",
        "100",
        "15.0",
        "10.0",
        "+0.370",
    ]
    assert verdict(results) == [
        "throughput @16 >= 10x LiteLLM: 15.0x, met",
        "throughput @64 >= 10x LiteLLM: 10.0x, met",
        "added p50 @1 <= 0.5 ms: +0.370 ms, met",
    ]


def test_a_point_with_errors_is_shown_invalid_and_takes_no_part_in_any_ratio():
    results = [
        result("upstream", 100_000, 100_000, 0.03),
        result("sealgate", 3000, 2500, 0.40, non_2xx_at_64=7),
        result("litellm", 200, 250, 5.0),
    ]
    line = row(render_table(results), "sealgate")
    assert "invalid (7 non-2xx, 0 socket errors)" in line
    assert "2,500" not in line
    assert "throughput @64 >= 10x LiteLLM: no valid comparison" in verdict(results)


def test_a_target_that_could_not_run_says_why_and_is_never_called_met():
    results = [
        result("upstream", 100_000, 100_000, 0.03),
        TargetResult(key="sealgate", label="sealgate", not_measured="no `sealgate` command"),
        TargetResult(key="litellm", label="litellm", not_measured="install failed"),
    ]
    table = render_table(results)
    assert "| sealgate | not measured: no `sealgate` command |" in table
    assert "| litellm | not measured: install failed |" in table
    assert verdict(results) == ["Sealgate: not measured (no `sealgate` command)"]


def test_without_litellm_there_is_no_throughput_verdict():
    results = [result("upstream", 100_000, 100_000, 0.03), result("sealgate", 3000, 2500, 0.9)]
    assert verdict(results) == [
        "throughput @16 >= 10x LiteLLM: no valid comparison",
        "throughput @64 >= 10x LiteLLM: no valid comparison",
        "added p50 @1 <= 0.5 ms: +0.870 ms, NOT met",
    ]


def test_resident_memory_counts_the_children_of_a_server_too():
    # A Python child that holds 64 MiB (written, so resident) and says so: its memory must be
    # counted in this process's tree, as LiteLLM's workers are counted in its server's.
    code = "import sys; b = b'x' * (64 * 2**20); print('ready', flush=True); sys.stdin.read()"
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        child_rss = tree_rss_bytes(child.pid)
        assert child_rss >= 64 * 2**20
        assert tree_rss_bytes(os.getpid()) >= child_rss + 10 * 2**20
    finally:
        child.communicate(b"", timeout=30)


def test_rounds_combine_to_the_median_round_per_point_with_the_range_noted():
    rounds = [
        result("sealgate", 3000, 2600, 0.40),
        result("sealgate", 3600, 2500, 0.45),
        result("sealgate", 3300, 2900, 0.38),
    ]
    combined = combine(rounds)
    assert combined.points[16].rps == 3300
    assert combined.points[64].rps == 2600
    assert combined.points[1].p50_ms == 0.40
    assert "3 rounds: req/s @16 3,000-3,600" in combined.notes


def test_a_point_with_errors_in_any_round_stays_invalid_when_rounds_combine():
    rounds = [
        result("sealgate", 3000, 2600, 0.40),
        result("sealgate", 3100, 2700, 0.40, non_2xx_at_64=5),
        result("sealgate", 3200, 2800, 0.40),
    ]
    combined = combine(rounds)
    assert combined.points[64].errors == 5
    assert "invalid" in row(render_table([combined]), "sealgate")


def test_governance_is_compared_with_the_spine_of_the_same_run():
    results = [
        result("sealgate", 4000, 3000, 0.40),
        result("sealgate-gov", 3400, 2700, 0.42),
        result("sealgate-gov-pg", 3000, 2500, 0.70),
    ]
    table = governance_table(results)
    assert table is not None
    cells = [c.strip() for c in row(table, "sealgate-gov").split("|")[1:-1]]
    assert cells == ["sealgate-gov", "3,400", "0.85", "2,700", "0.90", "0.420", "+0.020"]
    lines = governance_verdict(results)
    assert "sealgate-gov @16 within 20% of the spine: 0.85x, met" in lines
    assert "sealgate-gov-pg @16 within 20% of the spine: 0.75x, NOT met" in lines
