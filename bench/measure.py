"""Measuring one target: start it, check one answer, drive wrk at each concurrency, read RSS.

Points are measured one after another, each after a warm-up at the same concurrency, so the
target's connections and caches are hot. A point whose run saw any non-2xx answer or socket error
is kept but marked invalid in the report: an error rate is not a throughput.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import Children, StartFailed, child_env, http_request, tree_rss_bytes
from bench.targets import RunContext, Target, chat_body
from bench.wrk import WrkFailed, WrkResult, run_wrk

THROUGHPUT_CONNECTIONS = (16, 64)
LATENCY_CONNECTIONS = 1


@dataclass(frozen=True)
class Durations:
    warmup_s: float
    measure_s: float


@dataclass
class TargetResult:
    key: str
    label: str
    version: str = ""
    not_measured: str | None = None
    points: dict[int, WrkResult] = field(default_factory=dict)
    rss_bytes: int | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "version": self.version,
            "not_measured": self.not_measured,
            "points": {str(c): p.as_dict() for c, p in sorted(self.points.items())},
            "rss_bytes": self.rss_bytes,
            "notes": self.notes,
        }


def _say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def check_answer(url: str, auth: str) -> None:
    """One request by hand: the target must answer 200 with a chat completion."""
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = f"Bearer {auth}"
    try:
        status, body = http_request("POST", url, chat_body(), headers, timeout=30.0)
    except OSError as exc:
        raise StartFailed(f"first request failed: {type(exc).__name__}") from None
    if status != 200:
        raise StartFailed(f"first request answered HTTP {status}: {body[:200]!r}")
    try:
        data = json.loads(body)
    except ValueError:
        raise StartFailed("first request answered 200 without JSON") from None
    if not isinstance(data, dict) or not data.get("choices"):
        raise StartFailed("first request answered 200 without `choices`")


def measure_target(
    target: Target,
    ctx: RunContext,
    children: Children,
    durations: Durations,
    script: Path,
) -> TargetResult:
    result = TargetResult(key=target.key, label=target.label)
    _say(f"{target.key}: starting")
    before = set(id(c) for c in children.running())
    try:
        started = target.start(ctx, children)
        result.version = started.version
        result.notes.extend(started.notes)
        check_answer(started.url, started.auth)
        env: Mapping[str, str] = child_env({"BENCH_AUTH": started.auth})
        for connections in (*THROUGHPUT_CONNECTIONS, LATENCY_CONNECTIONS):
            _say(f"{target.key}: {connections} connection(s)")
            run_wrk(started.url, connections, durations.warmup_s, script, env)
            point = run_wrk(started.url, connections, durations.measure_s, script, env)
            result.points[connections] = point
            if point.errors:
                _say(f"{target.key}: {point.non_2xx} non-2xx, {point.socket_errors} socket errors")
        if started.rss_child is not None:
            result.rss_bytes = tree_rss_bytes(started.rss_child.proc.pid)
    except (StartFailed, WrkFailed) as exc:
        result.not_measured = str(exc)
        _say(f"{target.key}: not measured: {exc}")
    finally:
        for child in children.running():
            if id(child) not in before:
                children.stop(child)
    return result
