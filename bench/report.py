"""The report: a markdown table with ratios, and the verdict against the issue's targets.

Pure functions over `TargetResult`s. A number that came from a run with errors is shown as
"invalid" and takes part in no ratio; a target that could not run says why.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.measure import LATENCY_CONNECTIONS, TargetResult
from bench.wrk import WrkResult

UPSTREAM = "upstream"
LITELLM = "litellm"
SEALGATE = "sealgate"
GOVERNED = ("sealgate-gov", "sealgate-gov-pg")
TARGET_THROUGHPUT_RATIO = 10.0
TARGET_ADDED_P50_MS = 0.5
TARGET_GOVERNANCE_RATIO = 0.8  # governance on: throughput within 20% of the spine

HEADER = (
    "target",
    "req/s @16",
    "req/s @64",
    "p50 ms @1",
    "p99 ms @1",
    "RSS MB",
    "x LiteLLM @16",
    "x LiteLLM @64",
    "added p50 ms",
)


def valid_point(result: TargetResult | None, connections: int) -> WrkResult | None:
    if result is None or result.not_measured is not None:
        return None
    point = result.points.get(connections)
    if point is None or point.errors or point.requests == 0:
        return None
    return point


def throughput_ratio(
    result: TargetResult, baseline: TargetResult | None, connections: int
) -> float | None:
    mine, theirs = valid_point(result, connections), valid_point(baseline, connections)
    if mine is None or theirs is None or theirs.rps == 0:
        return None
    return mine.rps / theirs.rps


def added_p50_ms(result: TargetResult, upstream: TargetResult | None) -> float | None:
    mine = valid_point(result, LATENCY_CONNECTIONS)
    base = valid_point(upstream, LATENCY_CONNECTIONS)
    if mine is None or base is None:
        return None
    return mine.p50_ms - base.p50_ms


def _by_key(results: Sequence[TargetResult]) -> dict[str, TargetResult]:
    return {r.key: r for r in results}


def _point_cell(result: TargetResult, connections: int, fmt: str, attr: str) -> str:
    point = result.points.get(connections)
    if point is None:
        return "-"
    if point.errors:
        return f"invalid ({point.non_2xx} non-2xx, {point.socket_errors} socket errors)"
    return format(getattr(point, attr), fmt)


def _opt(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def render_table(results: Sequence[TargetResult]) -> str:
    keyed = _by_key(results)
    upstream, litellm = keyed.get(UPSTREAM), keyed.get(LITELLM)
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in results:
        if r.not_measured is not None:
            cells = [r.label, f"not measured: {r.not_measured}"] + ["-"] * (len(HEADER) - 2)
        else:
            cells = [
                r.label,
                _point_cell(r, 16, ",.0f", "rps"),
                _point_cell(r, 64, ",.0f", "rps"),
                _point_cell(r, 1, ".3f", "p50_ms"),
                _point_cell(r, 1, ".3f", "p99_ms"),
                _opt(None if r.rss_bytes is None else r.rss_bytes / 2**20, ".0f"),
                _opt(throughput_ratio(r, litellm, 16), ".1f"),
                _opt(throughput_ratio(r, litellm, 64), ".1f"),
                "0 (baseline)" if r.key == UPSTREAM else _opt(added_p50_ms(r, upstream), "+.3f"),
            ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def verdict(results: Sequence[TargetResult]) -> list[str]:
    """Sealgate against the issue's targets, one line each; never "met" without a number."""
    keyed = _by_key(results)
    sealgate = keyed.get(SEALGATE)
    if sealgate is None:
        return []
    if sealgate.not_measured is not None:
        return [f"Sealgate: not measured ({sealgate.not_measured})"]
    lines = []
    for connections in (16, 64):
        ratio = throughput_ratio(sealgate, keyed.get(LITELLM), connections)
        if ratio is None:
            lines.append(f"throughput @{connections} >= 10x LiteLLM: no valid comparison")
        else:
            met = "met" if ratio >= TARGET_THROUGHPUT_RATIO else "NOT met"
            lines.append(f"throughput @{connections} >= 10x LiteLLM: {ratio:.1f}x, {met}")
    added = added_p50_ms(sealgate, keyed.get(UPSTREAM))
    if added is None:
        lines.append("added p50 @1 <= 0.5 ms: no valid comparison")
    else:
        met = "met" if added <= TARGET_ADDED_P50_MS else "NOT met"
        lines.append(f"added p50 @1 <= 0.5 ms: {added:+.3f} ms, {met}")
    return lines


GOVERNANCE_HEADER = (
    "target",
    "req/s @16",
    "x spine @16",
    "req/s @64",
    "x spine @64",
    "p50 ms @1",
    "p50 over spine ms",
)


def _governed(results: Sequence[TargetResult]) -> list[TargetResult]:
    return [r for r in results if r.key in GOVERNED]


def governance_table(results: Sequence[TargetResult]) -> str | None:
    """Governance on against the spine (`sealgate`) of the same run; None if none ran."""
    governed = _governed(results)
    spine = _by_key(results).get(SEALGATE)
    if not governed or spine is None:
        return None
    header = GOVERNANCE_HEADER
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in [spine, *governed]:
        if r.not_measured is not None:
            cells = [r.label, f"not measured: {r.not_measured}"] + ["-"] * (len(header) - 2)
        else:
            is_spine = r is spine
            over = added_p50_ms(r, spine)
            cells = [
                r.label,
                _point_cell(r, 16, ",.0f", "rps"),
                "1 (baseline)" if is_spine else _opt(throughput_ratio(r, spine, 16), ".2f"),
                _point_cell(r, 64, ",.0f", "rps"),
                "1 (baseline)" if is_spine else _opt(throughput_ratio(r, spine, 64), ".2f"),
                _point_cell(r, 1, ".3f", "p50_ms"),
                "0 (baseline)" if is_spine else _opt(over, "+.3f"),
            ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def governance_verdict(results: Sequence[TargetResult]) -> list[str]:
    """Each governance target against the issue's bound: at least 0.8x the spine's req/s."""
    spine = _by_key(results).get(SEALGATE)
    lines = []
    for r in _governed(results):
        if r.not_measured is not None:
            lines.append(f"{r.label}: not measured ({r.not_measured})")
            continue
        for connections in (16, 64):
            ratio = throughput_ratio(r, spine, connections)
            what = f"{r.label} @{connections} within 20% of the spine"
            if ratio is None:
                lines.append(f"{what}: no valid comparison")
            else:
                met = "met" if ratio >= TARGET_GOVERNANCE_RATIO else "NOT met"
                lines.append(f"{what}: {ratio:.2f}x, {met}")
    return lines


def combine(rounds: Sequence[TargetResult]) -> TargetResult:
    """One target measured in several interleaved rounds, as one result: per point, the round
    with the median req/s (the median p50 for the latency point), and the range in the notes.
    A point that saw errors in any round is shown as that invalid round: errors are never
    averaged away. A target that could not run in some round says why."""
    first = rounds[0]
    if len(rounds) == 1:
        return first
    failed = next((r for r in rounds if r.not_measured is not None), None)
    if failed is not None:
        return failed
    combined = TargetResult(
        key=first.key,
        label=first.label,
        version=first.version,
        notes=list(first.notes),
        rss_bytes=max((r.rss_bytes for r in rounds if r.rss_bytes is not None), default=None),
    )
    for connections in first.points:
        found = [r.points[connections] for r in rounds if connections in r.points]
        bad = next((p for p in found if p.errors), None)
        latency = connections == LATENCY_CONNECTIONS
        ordered = sorted(found, key=lambda p: p.p50_ms if latency else p.rps)
        combined.points[connections] = bad or ordered[(len(ordered) - 1) // 2]
        if latency:
            spread = f"p50 ms @1 {ordered[0].p50_ms:.3f}-{ordered[-1].p50_ms:.3f}"
        else:
            spread = f"req/s @{connections} {ordered[0].rps:,.0f}-{ordered[-1].rps:,.0f}"
        combined.notes.append(f"{len(found)} rounds: {spread}")
    return combined
