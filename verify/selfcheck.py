"""The environment audit as one call, for the CLI, CI and the gateway's start-up check.

``run(target_python, locks, policies_dir)`` gathers facts once (see ``verify.facts``) and runs
the checks that fit the environment's layout over them:

- Sealgate's install layout (dependencies in the private library, ``docker/install.sh``):
  ``pth`` + ``manifest`` + ``lock``. The signed install manifest binds every file to a locked
  wheel (or the project's own wheel); installed RECORD files are not trusted for anything.
- any other environment (the dev venv, a plain ``pip install``): ``pth`` + ``record`` +
  ``lock``, as far as RECORD files can be trusted (docs/verify.md says how far that is), plus the
  manifest when one is named.

``Baseline`` is the cheap re-check of what changed since a known point (``verify.watch``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from verify import lock, lockfile, manifest, pth, record, watch, wheelhouse
from verify.facts import EnvFacts, gather
from verify.findings import Finding, Report, Severity, VerifyError, finding
from verify.policies import load_pth_policy

ENV_CHECKS = ("pth", "record", "lock")
BOUND_CHECKS = ("pth", "manifest", "lock")
ALL_CHECKS = ("pth", "record", "lock", "manifest", "wheelhouse")
RECHECK = watch.CHECK


def env_checks(facts: EnvFacts) -> tuple[str, ...]:
    """The environment checks for this layout (see the module docstring)."""
    return BOUND_CHECKS if facts.bound_layout else ENV_CHECKS


Signed = tuple[Path | None, Path | None]
"""(install manifest, pinned public key); None for either: the layout's own, beside the
private library."""


def check_manifest(facts: EnvFacts, signed: Signed | None = None) -> list[Finding]:
    """The install manifest check, against ``signed`` or the layout's own files."""
    doc = (signed and signed[0]) or facts.manifest_path
    key = (signed and signed[1]) or facts.manifest_key_path
    try:
        data = doc.read_bytes()
    except OSError as exc:
        why = f"no readable install manifest ({exc.strerror}): the files cannot be bound"
        return [finding(manifest.CHECK, str(doc), Severity.CRITICAL, why, manifest.REMEDY)]
    return manifest.check(facts, data, _read(key), key_name=str(key))


def analyse(
    facts: EnvFacts,
    locks: Sequence[Path],
    policies_dir: Path,
    checks: Sequence[str] | None = None,
    project: Sequence[str] = (lock.PROJECT,),
    wheels: Path | None = None,
    signed_manifest: Signed | None = None,
) -> list[Finding]:
    """The checks over gathered facts (reads only the policy, lock, manifest and wheel files).

    ``checks``: default ``env_checks(facts)``. The manifest check also runs when
    ``signed_manifest`` names one, the wheelhouse check when ``wheels`` names a directory.
    """
    chosen = env_checks(facts) if checks is None else tuple(checks)
    results: list[Finding] = []
    if "pth" in chosen:
        results += pth.run(facts, load_pth_policy(policies_dir))
    if "record" in chosen:
        results += record.run(facts)
    if "lock" in chosen:
        pins = lockfile.applicable(lockfile.load(locks), facts.markers)
        results += lock.run(facts, pins, project)
    if "manifest" in chosen or signed_manifest is not None:
        results += check_manifest(facts, signed_manifest)
    if wheels is not None:
        pins = lockfile.applicable(lockfile.load(locks), facts.markers)
        results += wheelhouse.run(facts, pins, wheels, tuple(project))
    return results


def run(
    target_python: str,
    locks: Sequence[Path],
    policies_dir: Path,
    checks: Sequence[str] | None = None,
    project: Sequence[str] = (lock.PROJECT,),
    wheels: Path | None = None,
    signed_manifest: Signed | None = None,
) -> Report:
    """Audit ``target_python``'s environment. Raises ``VerifyError`` if it cannot run at all.

    ``project`` names distributions expected in addition to the lock (the project itself);
    pass ``()`` for an environment without it. ``wheels``: a wheelhouse directory, to bind the
    installed files to the locked wheel hashes (``verify.wheelhouse``). ``signed_manifest``:
    (manifest file, pinned public key PEM) made by ``verify manifest create`` at install time.
    """
    start = time.perf_counter()
    facts = gather(target_python, hash_all=signed_manifest is not None)
    chosen = env_checks(facts) if checks is None else tuple(checks)
    results = analyse(facts, locks, policies_dir, chosen, project, wheels, signed_manifest)
    return Report(tuple(results), time.perf_counter() - start, chosen)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise VerifyError(f"cannot read {path}: {exc.strerror}") from exc


def tree(facts: EnvFacts, hashes: Mapping[str, str | None] | None = None) -> watch.Tree:
    """What the watch compares with: the files of these facts, by stamp (and hash if given)."""
    return watch.Tree(facts.roots, facts.stamps or facts.files, hashes, facts.bound_layout)


class Baseline:
    """The import roots' state at a known point (normally right after a clean check): later
    ``changes()`` are files that appeared, vanished or changed since, by stat stamp."""

    def __init__(self, target_python: str, facts: EnvFacts) -> None:
        self.target_python = target_python
        self.facts = facts
        self._tree = tree(facts)

    @classmethod
    def capture(cls, target_python: str) -> Baseline:
        return cls(target_python, gather(target_python, stat_only=True))

    def changes(self) -> list[Finding]:
        return self._tree.scan()
