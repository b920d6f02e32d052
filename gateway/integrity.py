"""The start-up integrity self-check and its watch after start-up (DESIGN.md invariant 6).

The check runs in the launcher (``gateway/boot.py``), before this module is imported, in an
isolated interpreter; ``check`` adopts its verdict (``verify.startup.current()``). In
``enforce`` mode (the default) any finding has already refused start-up; in ``warn`` it is
logged here and shown on ``/health/ready``; ``off`` skips it (and says so there). Afterwards the
watch (``verify.watch``) compares the import roots with what the check saw: a new ``.pth`` or a
changed file raises an alarm: a log line naming the file, the ``sealgate_integrity_clean``
metric at 0, and, in enforce mode, readiness false. Without a verdict (the gateway imported
without the launcher) the check runs here as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread

from gateway.config import Verify
from gateway.metrics import METRICS
from verify import policies, policy_bundle, render, selfcheck, startup
from verify import watch as file_watch
from verify.findings import Finding, Report, Severity, VerifyError, finding

log = logging.getLogger("sealgate.integrity")

MAX_NOTED = 200  # findings kept for the dashboard; the log has every one
CLEAN = METRICS.gauge("sealgate_integrity_clean", "1 when the last integrity check was clean")
TARGET_ENV = "SEALGATE_VERIFY_TARGET_PYTHON"


def project_root() -> Path:
    """The directory holding the ``gateway`` package: the source tree, or the image's app dir."""
    return Path(__file__).resolve().parent.parent


class StartupRefused(Exception):
    """The self-check failed in enforce mode; the message is for stderr."""


@dataclass
class Integrity:
    mode: str
    interval: float
    baseline: selfcheck.Baseline | None = None
    state: dict[str, Any] = field(default_factory=dict)
    watcher: file_watch.Watch | None = None
    # For the dashboard (gateway/api/ui/): what the checks found (check, subject, reason; never
    # more than a finding's own text), when start-up checked, and when the watch last alarmed.
    findings: list[dict[str, str]] = field(default_factory=list)
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    alarmed_at: datetime | None = None

    def note(self, found: list[Finding]) -> None:
        self.findings.extend(
            {"check": f.check, "subject": f.subject, "reason": f.reason} for f in found
        )
        del self.findings[:-MAX_NOTED]

    def readiness(self) -> dict[str, Any]:
        return self.state

    async def watch(self) -> None:
        """Watch the import roots (or re-check every ``interval`` seconds) until cancelled."""
        if self.watcher is not None and self.interval > 0:
            await file_watch.run(self.watcher, self.interval, self._changed)
            return
        if self.baseline is None or self.interval <= 0:
            return
        while True:
            await asyncio.sleep(self.interval)
            try:
                changes = await anyio.to_thread.run_sync(self.baseline.changes)
            except VerifyError as exc:
                log.error("integrity re-check could not run", extra={"sg_reason": str(exc)})
                self._alarm([], reason="re-check could not run")
                continue
            if changes:
                self._alarm(changes, reason="the environment changed after start-up")

    def _changed(self, changes: list[Finding]) -> None:
        self._alarm(changes, reason="the environment changed after start-up")

    def _alarm(self, changes: list[Finding], reason: str) -> None:
        CLEAN[()] = 0
        self.note(changes)
        self.alarmed_at = datetime.now(UTC)
        for change in changes:
            log.error(
                "integrity alarm",
                extra={
                    "sg_check": change.check,
                    "sg_subject": change.subject,
                    "sg_reason": change.reason,
                },
            )
        self.state.update(
            {"ok": self.mode != "enforce", "clean": False, "alarm": reason, "changes": len(changes)}
        )


def policies_dir(settings: Verify) -> Path:
    directory = settings.policies_dir
    return Path(directory) if directory else policies.default_dir()


def check_policy_bundle(settings: Verify) -> dict[str, Any]:
    """With ``verify.policy_key`` set, the policy files must match the manifest signed with that
    key before any of them is read. Enforce refuses start-up on a mismatch; warn logs it."""
    if settings.mode == "off" or settings.policy_key is None:
        return {"ok": True, "signed": None}
    directory = policies_dir(settings)
    try:
        results = policy_bundle.check(directory, Path(settings.policy_key).read_bytes())
    except (OSError, VerifyError) as exc:
        results = [
            finding(
                policy_bundle.CHECK,
                str(directory),
                Severity.CRITICAL,
                f"the policy bundle could not be checked: {exc}",
                policy_bundle.REMEDY,
            )
        ]
    report = Report(tuple(results), 0.0, (policy_bundle.CHECK,))
    if not report.clean:
        if settings.mode == "enforce":
            raise StartupRefused(
                "the policy bundle does not verify; refusing to start (verify.mode: enforce)\n"
                + render.text(report)
            )
        for problem in report.problems:
            log.error(
                "policy bundle finding",
                extra={"sg_subject": problem.subject, "sg_reason": problem.reason},
            )
    return {"ok": report.clean or settings.mode != "enforce", "signed": report.clean}


def adopt(verdict: startup.Verdict, interval: float) -> Integrity:
    """The launcher's verdict as readiness, metric and log lines; the watch starts from the
    facts the check saw (every file's hash and the stamp taken before it was hashed)."""
    integrity = Integrity(verdict.mode, interval)
    if verdict.mode == "off":
        integrity.state = {"ok": True, "mode": "off", "clean": None}
        return integrity
    if verdict.error is not None:
        log.error("integrity self-check could not run", extra={"sg_reason": verdict.error})
        CLEAN[()] = 0
        integrity.state = {"ok": True, "mode": "warn", "clean": False, "error": "could not run"}
        return integrity
    report = verdict.report
    CLEAN[()] = 1 if report.clean else 0
    integrity.state = {
        "ok": report.clean or verdict.mode != "enforce",
        "mode": verdict.mode,
        "clean": report.clean,
        "findings": len(report.problems),
        "seconds": round(report.elapsed, 3),
        "bound": verdict.bound,
    }
    integrity.note(list(report.problems))
    for problem in report.problems:
        log.error(
            "integrity finding",
            extra={
                "sg_check": problem.check,
                "sg_subject": problem.subject,
                "sg_reason": problem.reason,
            },
        )
    if report.clean:
        log.info("integrity self-check clean", extra={"sg_seconds": round(report.elapsed, 3)})
    if verdict.facts is not None:
        facts = verdict.facts
        integrity.watcher = file_watch.Watch(selfcheck.tree(facts, hashes=facts.files))
    return integrity


def check(settings: Verify) -> Integrity:
    """Run the self-check as the config says; raise StartupRefused in enforce mode on findings."""
    verdict = startup.current()
    if verdict is not None:
        return adopt(verdict, settings.interval_seconds)
    integrity = Integrity(settings.mode, settings.interval_seconds)
    if settings.mode == "off":
        integrity.state = {"ok": True, "mode": "off", "clean": None}
        return integrity
    root = project_root()
    locks = [Path(p) for p in settings.locks] or [
        root / "requirements.lock",
        root / "requirements-build.lock",
    ]
    policy_dir = policies_dir(settings)
    target = os.environ.get(TARGET_ENV, sys.executable)
    try:
        integrity.baseline = selfcheck.Baseline.capture(target)
        report = selfcheck.run(target, locks, policy_dir)
    except VerifyError as exc:
        if settings.mode == "enforce":
            raise StartupRefused(f"integrity self-check could not run: {exc}") from None
        log.error("integrity self-check could not run", extra={"sg_reason": str(exc)})
        CLEAN[()] = 0
        integrity.state = {"ok": True, "mode": "warn", "clean": False, "error": "could not run"}
        return integrity
    CLEAN[()] = 1 if report.clean else 0
    integrity.state = {
        "ok": report.clean or settings.mode != "enforce",
        "mode": settings.mode,
        "clean": report.clean,
        "findings": len(report.problems),
        "seconds": round(report.elapsed, 3),
    }
    integrity.note(list(report.problems))
    if not report.clean:
        if settings.mode == "enforce":
            raise StartupRefused(
                "integrity self-check found problems; refusing to start (verify.mode: enforce)\n"
                + render.text(report)
            )
        for problem in report.problems:
            log.error(
                "integrity finding",
                extra={
                    "sg_check": problem.check,
                    "sg_subject": problem.subject,
                    "sg_reason": problem.reason,
                },
            )
    else:
        log.info("integrity self-check clean", extra={"sg_seconds": round(report.elapsed, 3)})
    return integrity
