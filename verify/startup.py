"""The start-up check as the launchers run it (``gateway/boot.py``, ``python -m verify``).

A launcher is an interpreter started ``-I -S -B``: no site directory processed, no ``.pth`` or
customize hook run, no path from the environment, no bytecode written. In it the check runs in
two stages, so that the verifier never imports code it has not yet verified:

1. ``bind`` imports only the modules of ``TRUSTED_BASE`` (loaded from their source files: the
   launchers keep the project's bytecode out until this stage has compared it, see
   ``source_only`` in ``gateway/boot.py`` and ``verify/__main__.py``): it gathers the facts in
   process, verifies the install manifest's signature with ``verify.p256`` and compares every
   file in the site directories and the private library with it. Nothing from the
   environment has run yet.
2. ``audit`` imports the rest of ``verify`` (which stage one has just proved unchanged, in
   Sealgate's layout) and runs the policy bundle, ``.pth``/hook and lock checks.

Only when both pass (or the mode allows it) does the launcher put the dependencies on the path
and import the gateway. ``adopt``/``current`` hand the verdict to the gateway, which reports it
on ``/health/ready`` and starts the watch from the facts the check saw.

Outside Sealgate's layout (a dev venv: dependencies in site-packages) there is no manifest, so
stage one has nothing to bind against and stage two checks RECORD files instead.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from verify import manifest, probe
from verify.facts import EnvFacts, gather, remember
from verify.findings import Finding, Report, Severity, VerifyError, finding

__all__ = ["VerifyError"]  # the launcher catches it through this module

MODES = ("enforce", "warn", "off")
MODE_ENV = "SEALGATE_VERIFY_MODE"
MANIFEST_ENV, MANIFEST_KEY_ENV = "SEALGATE_VERIFY_MANIFEST", "SEALGATE_VERIFY_MANIFEST_KEY"
# verify subcommands that build the trust stage one would check: they run without it.
UNBOUND_COMMANDS = (("manifest", "create"),)
# The verify modules imported before anything is verified: what the check rests on (with the
# interpreter and its standard library). tests/verify/test_startup.py keeps this list true.
TRUSTED_BASE = (
    "verify",
    "verify.facts",
    "verify.findings",
    "verify.manifest",
    "verify.p256",
    "verify.probe",
    "verify.startup",
)


@dataclass(frozen=True)
class Layout:
    """This interpreter's environment, found without reading any file of it but pyvenv.cfg."""

    prefix: str
    site_dirs: tuple[str, ...]
    private_dir: str | None

    @property
    def bound(self) -> bool:
        return self.private_dir is not None

    @property
    def dependency_dirs(self) -> list[str]:
        """What the launcher appends to the path: the private library in Sealgate's layout,
        else the site directories (their .pth files are never processed)."""
        return [self.private_dir] if self.private_dir else list(self.site_dirs)


def own_layout() -> Layout:
    prefix, site_dirs, _ = probe.site_dirs()
    private = os.path.join(prefix, probe.PRIVATE_LIB)
    return Layout(prefix, tuple(site_dirs), private if os.path.isdir(private) else None)


def manifest_override() -> tuple[Path | None, Path | None]:
    """``SEALGATE_VERIFY_MANIFEST`` / ``_KEY``: another manifest or a key pinned elsewhere."""
    doc, key = os.environ.get(MANIFEST_ENV), os.environ.get(MANIFEST_KEY_ENV)
    return (Path(doc) if doc else None), (Path(key) if key else None)


@dataclass(frozen=True)
class Settings:
    """What the check needs; the launcher fills it from the config's ``verify`` section and
    the ``SEALGATE_VERIFY_*`` environment variables."""

    mode: str = "enforce"
    locks: tuple[Path, ...] = ()
    policies_dir: Path = Path("policies")
    policy_key: Path | None = None
    manifest: Path | None = None
    manifest_key: Path | None = None
    project: tuple[str, ...] = ("sealgate",)
    target_python: str | None = None
    """None: this interpreter (the facts are gathered in process)."""


@dataclass(frozen=True)
class Verdict:
    mode: str
    findings: tuple[Finding, ...] = ()
    elapsed: float = 0.0
    facts: EnvFacts | None = field(default=None, repr=False)
    error: str | None = None
    bound: bool = False
    target_python: str | None = None

    @property
    def report(self) -> Report:
        return Report(self.findings, self.elapsed)

    @property
    def clean(self) -> bool:
        return self.error is None and self.report.clean

    @property
    def refused(self) -> bool:
        return self.mode == "enforce" and not self.clean


_adopted: Verdict | None = None


def adopt(verdict: Verdict) -> None:
    """The launcher records the verdict the gateway then reports (one per process)."""
    global _adopted
    _adopted = verdict


def current() -> Verdict | None:
    return _adopted


def mode_from_env(default: str | None = None) -> str | None:
    value = os.environ.get(MODE_ENV, "").strip()
    if not value:
        return default
    if value not in MODES:
        raise VerifyError(f"{MODE_ENV}={value!r}: expected one of {', '.join(MODES)}")
    return value


def _read(path: Path, what: str) -> bytes | Finding:
    try:
        return path.read_bytes()
    except OSError as exc:
        why = f"no readable {what} ({exc.strerror}): the installed files cannot be bound"
        return finding(manifest.CHECK, str(path), Severity.CRITICAL, why, manifest.REMEDY)


def bind(
    facts: EnvFacts, manifest_path: Path | None = None, key_path: Path | None = None
) -> list[Finding]:
    """Stage one: every file against the signed install manifest (standard library only)."""
    doc_path = manifest_path or facts.manifest_path
    key = key_path or facts.manifest_key_path
    doc, pem = _read(doc_path, "install manifest"), _read(key, "manifest public key")
    if isinstance(doc, Finding):
        return [doc]
    if isinstance(pem, Finding):
        return [pem]
    return manifest.check(facts, doc, pem, key_name=str(key))


def audit(facts: EnvFacts, settings: Settings, bound: bool) -> list[Finding]:
    """Stage two: the policy bundle (when a key is pinned: first, and alone when it fails in
    enforce mode, so that no policy is read), start-up hooks and the lock, plus RECORD files
    when stage one had no manifest to bind against."""
    from verify import policy_bundle, selfcheck

    results: list[Finding] = []
    if settings.policy_key is not None:
        try:
            results += policy_bundle.check(settings.policies_dir, settings.policy_key.read_bytes())
        except (OSError, VerifyError) as exc:
            why = f"the policy bundle could not be checked: {exc}"
            where = str(settings.policies_dir)
            results.append(
                finding(policy_bundle.CHECK, where, Severity.CRITICAL, why, policy_bundle.REMEDY)
            )
        if problems(results) and settings.mode == "enforce":
            return results  # the policies are not read when their signature fails
    checks: Sequence[str] = ("pth", "lock") if bound else selfcheck.env_checks(facts)
    signed = None
    if not bound and settings.manifest is not None:
        signed = (settings.manifest, settings.manifest_key)
    return results + selfcheck.analyse(
        facts,
        settings.locks,
        settings.policies_dir,
        checks,
        settings.project,
        signed_manifest=signed,
    )


def policy_bundle_results(findings: Sequence[Finding]) -> list[Finding]:
    from verify import policy_bundle

    return [f for f in findings if f.check == policy_bundle.CHECK]


def problems(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if not f.passed]


def text(findings: Sequence[Finding]) -> str:
    """The problems as text, for a refusal, without ``verify.render`` (not yet verified)."""
    lines = []
    for f in problems(findings):
        lines += [f"[{f.status.value}/{f.severity.value}] {f.check}: {f.subject}"]
        lines += [f"    {f.reason}"] + ([f"    remedy: {f.remedy}"] if f.remedy else [])
    return "\n".join(lines) + "\n"


def refusal(findings: Sequence[Finding], what: str) -> str:
    """The launcher's message when ``what`` failed in enforce mode."""
    if what == "the install manifest":
        head = (
            "the installed files do not match the signed install manifest; refusing to start "
            f"({MODE_ENV} is enforce or unset: this is decided before the config is read)"
        )
    elif what == "the policy bundle":
        head = "the policy bundle does not verify; refusing to start (verify.mode: enforce)"
    else:
        head = "integrity self-check found problems; refusing to start (verify.mode: enforce)"
    return head + "\n" + text(findings)


def clock() -> float:
    return time.perf_counter()


def run_verifier(
    argv: Sequence[str],
    stdlib_path: list[str],
    trust_bytecode: Callable[[], None],
    prog: str = "verify",
) -> int:
    """``sealgate verify`` / ``python -m verify`` in a launcher: in Sealgate's layout, stage one
    binds the environment the verifier itself runs from before the rest of ``verify`` is
    imported; a failure is reported (stdout, exit 1) without importing anything else."""
    if own_layout().bound and tuple(argv[:2]) not in UNBOUND_COMMANDS:
        facts = gather(sys.executable, base_path=stdlib_path)
        binding = bind(facts, *manifest_override())
        if problems(binding):
            sys.stdout.write(text(binding))
            sys.stderr.write(
                "verify: NOT CLEAN: the environment this verifier runs from does not match its "
                "signed install manifest; nothing more of it was imported\n"
            )
            return 1
        remember(facts)
    trust_bytecode()  # bound (or, outside the layout, not bindable): bytecode as usual
    from verify import cli

    return cli.main(list(argv), prog)


_dependencies_added = False


def import_dependencies() -> None:
    """Put the environment's dependencies on the path, for a command that needs them (keyless
    signatures, signing). A no-op in a process that started normally (they are there already);
    in a launcher, stage one has bound them before any such command runs."""
    global _dependencies_added
    if _dependencies_added or not (sys.flags.isolated and sys.flags.no_site):
        return
    _dependencies_added = True
    sys.path += [d for d in own_layout().dependency_dirs if d not in sys.path]
