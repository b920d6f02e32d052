"""Counters and gauges in the Prometheus text format, without a client library.

Labels are operator-chosen names only (routes, models, deployments, status codes, check names):
never a key, a key id, a token, a path to a secret or anything a client sent. Updating a counter
is one dict operation, cheap enough for the hot path.
"""

from __future__ import annotations

from collections import defaultdict

Labels = tuple[tuple[str, str], ...]


class Metrics:
    def __init__(self) -> None:
        self._help: dict[str, tuple[str, str]] = {}  # name -> (type, help)
        self._values: dict[str, defaultdict[Labels, float]] = {}

    def _family(self, name: str, kind: str, help_text: str) -> defaultdict[Labels, float]:
        if name not in self._values:
            self._help[name] = (kind, help_text)
            self._values[name] = defaultdict(float)
        return self._values[name]

    def counter(self, name: str, help_text: str) -> defaultdict[Labels, float]:
        return self._family(name, "counter", help_text)

    def gauge(self, name: str, help_text: str) -> defaultdict[Labels, float]:
        return self._family(name, "gauge", help_text)

    def render(self) -> str:
        lines: list[str] = []
        for name, values in self._values.items():
            kind, help_text = self._help[name]
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in sorted(values.items()):
                text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                lines.append(f"{name}{{{text}}} {value:g}" if text else f"{name} {value:g}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


METRICS = Metrics()
REQUESTS = METRICS.counter("sealgate_requests_total", "API requests by route and status")
UPSTREAM_FAILURES = METRICS.counter(
    "sealgate_upstream_failures_total", "failed upstream attempts by deployment and error code"
)
