"""Typed results of every check: frozen findings, gathered into a report.

A check never prints. It returns findings; the CLI renders them (``verify.render``) and maps
them to an exit code. ``skipped`` and ``error`` are statuses of their own and never count as a
pass: a report is clean only when every result in it is ``ok``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    FINDING = "finding"
    SKIPPED = "skipped"
    ERROR = "error"


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


SEVERITY_ORDER = {s: i for i, s in enumerate(Severity)}


@dataclass(frozen=True)
class Finding:
    """One result of one check about one subject (a file, a distribution, an artifact)."""

    check: str
    subject: str
    status: Status
    severity: Severity
    reason: str
    remedy: str = ""

    @property
    def passed(self) -> bool:
        return self.status is Status.OK


def ok(check: str, subject: str, reason: str) -> Finding:
    return Finding(check, subject, Status.OK, Severity.INFO, reason)


def finding(check: str, subject: str, severity: Severity, reason: str, remedy: str) -> Finding:
    return Finding(check, subject, Status.FINDING, severity, reason, remedy)


@dataclass(frozen=True)
class Report:
    """All results of one run. ``clean`` is true only when every result is ``ok``."""

    findings: tuple[Finding, ...]
    elapsed: float = 0.0
    checks: tuple[str, ...] = field(default=())

    @property
    def clean(self) -> bool:
        return all(f.passed for f in self.findings)

    @property
    def problems(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.passed)


class VerifyError(Exception):
    """The verifier could not run: bad arguments, unreadable policy or lock, target not runnable.

    The CLI maps it to exit status 2. It is never a statement about the target's integrity.
    """
