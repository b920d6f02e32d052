"""The environment audit as one call, for the CLI, CI and the gateway's start-up self-check.

``run(target_python, locks, policies_dir)`` gathers facts once (one ``-I -S`` subprocess of the
target, see ``verify.facts``) and runs the pth, RECORD and lock checks over them. ``Baseline``
is the cheap periodic re-check: it remembers the facts of a clean start and reports new or
changed ``.pth`` files and customize hooks, and any file added, removed or changed in the site
directories since then.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from verify import lock, lockfile, manifest, pth, record, wheelhouse
from verify.facts import EnvFacts, gather
from verify.findings import Finding, Report, Severity, VerifyError, finding
from verify.policies import load_pth_policy

ENV_CHECKS = ("pth", "record", "lock")
ALL_CHECKS = (*ENV_CHECKS, "wheelhouse")
RECHECK = "recheck"
COMPROMISED = "treat the host as compromised: stop serving, investigate, rebuild from the locks"


def analyse(
    facts: EnvFacts,
    locks: Sequence[Path],
    policies_dir: Path,
    checks: Sequence[str] = ENV_CHECKS,
    project: Sequence[str] = (lock.PROJECT,),
    wheels: Path | None = None,
    signed_manifest: tuple[Path, Path] | None = None,
) -> list[Finding]:
    """The checks over gathered facts (reads only the policy, lock and wheelhouse files).

    The ``wheelhouse`` check runs when ``wheels`` names a wheelhouse directory.
    """
    results: list[Finding] = []
    if "pth" in checks:
        results += pth.run(facts, load_pth_policy(policies_dir))
    if "record" in checks:
        results += record.run(facts)
    if "lock" in checks:
        pins = lockfile.applicable(lockfile.load(locks), facts.markers)
        results += lock.run(facts, pins, project)
    if wheels is not None:
        pins = lockfile.applicable(lockfile.load(locks), facts.markers)
        results += wheelhouse.run(facts, pins, wheels, tuple(project))
    if signed_manifest is not None:
        doc, key = (_read(p) for p in signed_manifest)
        results += manifest.check(facts, doc, key, tuple(project))
    return results


def run(
    target_python: str,
    locks: Sequence[Path],
    policies_dir: Path,
    checks: Sequence[str] = ENV_CHECKS,
    project: Sequence[str] = (lock.PROJECT,),
    wheels: Path | None = None,
    signed_manifest: tuple[Path, Path] | None = None,
) -> Report:
    """Audit ``target_python``'s environment. Raises ``VerifyError`` if it cannot run at all.

    ``project`` names distributions expected in addition to the lock (the project itself,
    installed editable); pass ``()`` for an environment without it. ``wheels``: a wheelhouse
    directory, to bind the installed files to the locked wheel hashes (``verify.wheelhouse``).
    ``signed_manifest``: (manifest file, pinned public key PEM) made by ``verify manifest
    create`` at build time: the same binding without the wheelhouse (``verify.manifest``).
    """
    start = time.perf_counter()
    facts = gather(target_python)
    results = analyse(facts, locks, policies_dir, checks, project, wheels, signed_manifest)
    return Report(tuple(results), time.perf_counter() - start, tuple(checks))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise VerifyError(f"cannot read {path}: {exc.strerror}") from exc


@dataclass(frozen=True)
class Baseline:
    """The site directories' state at a known point (normally right after a clean self-check)."""

    target_python: str
    facts: EnvFacts

    @classmethod
    def capture(cls, target_python: str) -> Baseline:
        return cls(target_python, gather(target_python, stat_only=True))

    def changes(self) -> list[Finding]:
        """Findings for every hook or file that appeared, vanished or changed since capture.

        Files are compared by stat stamp (size, mtime, ctime, inode), ``.pth`` files and
        customize hooks by sha256, so a re-check costs a directory walk, not a full hash.
        """
        return diff(self.facts, gather(self.target_python, stat_only=True))


def diff(before: EnvFacts, after: EnvFacts) -> list[Finding]:
    results: list[Finding] = []
    old_hooks = {h.path: h.sha256 for h in before.hooks}
    for hook in after.hooks:
        if old_hooks.get(hook.path, "absent") != hook.sha256:
            results.append(_changed(hook.path, Severity.CRITICAL, f"new or changed {hook.module}"))
    old_pth = {p.path: p.sha256 for p in before.pth}
    for p in after.pth:
        if old_pth.get(p.path, "absent") != p.sha256:
            results.append(_changed(p.path, Severity.CRITICAL, "new or changed .pth file"))
    pth_paths = {p.path for p in after.pth}
    for path in sorted(set(before.files) | set(after.files)):
        if path in pth_paths:
            continue
        if path not in before.files:
            if _has_source(path, after):
                continue  # bytecode Python wrote for an existing source (not hashed: see record)
            results.append(_changed(path, Severity.HIGH, "file appeared after start-up"))
        elif path not in after.files:
            results.append(_changed(path, Severity.HIGH, "file vanished after start-up"))
        elif before.files[path] != after.files[path]:
            results.append(_changed(path, Severity.CRITICAL, "file changed after start-up"))
    return results


def _has_source(path: str, facts: EnvFacts) -> bool:
    source = record.bytecode_source(path)
    return source is not None and source in facts.files


def _changed(path: str, severity: Severity, reason: str) -> Finding:
    return finding(RECHECK, path, severity, reason, COMPROMISED)
