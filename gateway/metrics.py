"""Counters, gauges and histograms in the Prometheus text format, without a client library.

Labels are operator-chosen names only (routes, models, deployments, status codes, check names,
error codes, backends): never a key, a key id, a token, a path to a secret or anything a client
sent. Updating a counter is one dict operation and observing a histogram a bisect and two,
cheap enough for the hot path.

Names follow the Prometheus conventions: ``_total`` for counters, base units (``_seconds``,
``_usd``), histograms as ``_bucket{le=...}``, ``_sum`` and ``_count``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable

Labels = tuple[tuple[str, str], ...]

# Request and attempt latencies: 5 ms to 2 minutes (an LLM answer can take long).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Secret fetches: memory is not fetched; a backend answers in milliseconds or times out.
FETCH_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Histogram:
    """One histogram family: per label set, the count in each bucket, the sum and the count."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.series: dict[Labels, list[float]] = {}  # labels -> [per-bucket counts..., sum, n]

    def observe(self, labels: Labels, value: float) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = [0.0] * (len(self.buckets) + 3)
        series[bisect_left(self.buckets, value)] += 1  # the +Inf bucket is the last but two
        series[-2] += value
        series[-1] += 1

    def lines(self, name: str) -> list[str]:
        out: list[str] = []
        for labels, series in sorted(self.series.items()):
            running = 0.0
            for bound, count in zip((*self.buckets, float("inf")), series, strict=False):
                running += count
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                out.append(f"{name}_bucket{{{_labels((*labels, ('le', le)))}}} {running:g}")
            text = _labels(labels)
            suffix = f"{{{text}}}" if text else ""
            out.append(f"{name}_sum{suffix} {series[-2]:g}")
            out.append(f"{name}_count{suffix} {series[-1]:g}")
        return out


class Metrics:
    def __init__(self) -> None:
        self._help: dict[str, tuple[str, str]] = {}  # name -> (type, help)
        self._values: dict[str, defaultdict[Labels, float]] = {}
        self._histograms: dict[str, Histogram] = {}
        self._collectors: list[Callable[[], None]] = []

    def _family(self, name: str, kind: str, help_text: str) -> defaultdict[Labels, float]:
        if name not in self._values:
            self._help[name] = (kind, help_text)
            self._values[name] = defaultdict(float)
        return self._values[name]

    def counter(self, name: str, help_text: str) -> defaultdict[Labels, float]:
        return self._family(name, "counter", help_text)

    def gauge(self, name: str, help_text: str) -> defaultdict[Labels, float]:
        return self._family(name, "gauge", help_text)

    def histogram(
        self, name: str, help_text: str, buckets: tuple[float, ...] = LATENCY_BUCKETS
    ) -> Histogram:
        if name not in self._histograms:
            self._help[name] = ("histogram", help_text)
            self._histograms[name] = Histogram(buckets)
        return self._histograms[name]

    def collect_with(self, collector: Callable[[], None]) -> None:
        """Run ``collector`` before each render (gauges read from their source at scrape)."""
        self._collectors.append(collector)

    def render(self) -> str:
        for collect in list(self._collectors):
            collect()
        lines: list[str] = []
        for name, (kind, help_text) in self._help.items():
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            if kind == "histogram":
                lines.extend(self._histograms[name].lines(name))
                continue
            for labels, value in sorted(self._values[name].items()):
                text = _labels(labels)
                lines.append(f"{name}{{{text}}} {value:g}" if text else f"{name} {value:g}")
        return "\n".join(lines) + "\n"


def _labels(labels: Labels) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in labels)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


METRICS = Metrics()
REQUESTS = METRICS.counter("sealgate_requests_total", "API requests by route and status")
UPSTREAM_FAILURES = METRICS.counter(
    "sealgate_upstream_failures_total", "failed upstream attempts by deployment and error code"
)
REQUEST_SECONDS = METRICS.histogram(
    "sealgate_request_duration_seconds",
    "inference request latency by route, model, deployment and status",
)
FIRST_TOKEN_SECONDS = METRICS.histogram(
    "sealgate_time_to_first_token_seconds",
    "streamed answers: time from the request to the first event sent, by route, model and "
    "deployment",
)
TOKENS = METRICS.counter(
    "sealgate_tokens_total", "tokens by model, deployment and type (input, output, cached)"
)
COST = METRICS.counter("sealgate_cost_usd_total", "cost in US dollars by model and deployment")
IN_FLIGHT = METRICS.gauge(
    "sealgate_requests_in_flight", "inference requests being served, by route"
)
ATTEMPT_SECONDS = METRICS.histogram(
    "sealgate_upstream_attempt_duration_seconds",
    "upstream attempts (until the answer, or a stream's start) by deployment and outcome",
)
SECRET_FETCHES = METRICS.counter(
    "sealgate_secret_fetches_total",
    "credential fetches from a secret backend, by backend and outcome",
)
SECRET_FETCH_SECONDS = METRICS.histogram(
    "sealgate_secret_fetch_duration_seconds",
    "credential fetches from a secret backend, by backend",
    FETCH_BUCKETS,
)
