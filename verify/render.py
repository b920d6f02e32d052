"""Render a report as text, JSON or SARIF 2.1.0. Pure: report in, string out."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any
from urllib.parse import quote

from verify.findings import Finding, Report, Severity, Status

FORMATS = ("text", "json", "sarif")
SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}


def _as_dict(f: Finding) -> dict[str, str]:
    return {
        "check": f.check,
        "subject": f.subject,
        "status": f.status.value,
        "severity": f.severity.value,
        "reason": f.reason,
        "remedy": f.remedy,
    }


def summary(report: Report) -> str:
    counts = Counter(f.status.value for f in report.findings)
    parts = [f"{counts.get(s.value, 0)} {s.value}" for s in Status]
    verdict = "clean" if report.clean else "NOT CLEAN"
    return f"{verdict}: " + ", ".join(parts) + f" ({report.elapsed:.2f} s)"


def text(report: Report, verbose: bool = False) -> str:
    lines = []
    for f in report.findings:
        if f.passed and not verbose:
            continue
        lines.append(f"[{f.status.value}/{f.severity.value}] {f.check}: {f.subject}")
        lines.append(f"    {f.reason}")
        if f.remedy:
            lines.append(f"    remedy: {f.remedy}")
    lines.append(summary(report))
    return "\n".join(lines) + "\n"


def as_json(report: Report) -> str:
    doc = {
        "clean": report.clean,
        "elapsed": round(report.elapsed, 3),
        "findings": [_as_dict(f) for f in report.findings],
    }
    return json.dumps(doc, indent=2) + "\n"


def sarif(report: Report) -> str:
    """SARIF 2.1.0: one result per non-ok finding (kind 'fail'; skipped/error: 'review')."""
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for f in report.problems:
        rule_id = f"sealgate-verify/{f.check}"
        rules.setdefault(
            rule_id,
            {"id": rule_id, "shortDescription": {"text": f"sealgate verify: {f.check} check"}},
        )
        results.append(
            {
                "ruleId": rule_id,
                "kind": "fail" if f.status is Status.FINDING else "review",
                "level": _LEVEL[f.severity] if f.status is Status.FINDING else "warning",
                "message": {"text": f"{f.subject}: {f.reason}. Remedy: {f.remedy}"},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(f.subject)}}}],
                "properties": {"status": f.status.value, "severity": f.severity.value},
            }
        )
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "sealgate-verify",
                        "informationUri": "https://example.invalid/sealgate",
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def _uri(subject: str) -> str:
    """A valid URI for the subject: ``file://`` and the percent-encoded path (RFC 8089) for a
    file, else the first word, percent-encoded, as a relative reference (a distribution)."""
    if subject.startswith("/"):
        return "file://" + quote(subject, safe="/")
    return quote(subject.split(" ", 1)[0], safe="=+@,")


def render(report: Report, fmt: str, verbose: bool = False) -> str:
    if fmt == "json":
        return as_json(report)
    if fmt == "sarif":
        return sarif(report)
    return text(report, verbose)
