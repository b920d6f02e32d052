"""Sealgate's launcher: the first interpreter of every start runs isolated, checks, then serves.

    <venv>/bin/python -I -S -B <site-packages>/gateway/boot.py serve|verify|sbom|policy ...

The image's ENTRYPOINT and ``make run`` start the gateway exactly so. The ``sealgate`` command
and ``python -m gateway`` call ``main()``, which re-executes the interpreter into that command
line before it does anything else (before any secret is read). At module level this file
imports the standard library only; ``launch`` then imports ``verify``, and of it only what
``verify.startup.TRUSTED_BASE`` lists until the check has passed.

In the isolated interpreter (no site, no user site, no path from the environment, no bytecode
written), ``launch``:

1. puts only the project's own directory on the path (the one holding ``gateway`` and
   ``verify``) and, in Sealgate's install layout, runs the check's first stage: every file in
   the site directories and the private library against the signed install manifest, with the
   standard library alone (``verify.startup.bind``). A failure refuses before anything from the
   environment is imported and before the config is read (its YAML parser is one of those
   files): ``SEALGATE_VERIFY_MODE`` decides then, default ``enforce``;
2. appends the dependencies to the path (the private library, or the site directories of a dev
   venv) without processing any ``.pth`` file, imports ``yaml`` (just bound) to read the
   config's ``verify`` section, and runs the second stage: policy bundle, start-up hooks, lock;
3. hands the verdict to the gateway and imports ``gateway.cli`` only if the mode allows.

The serving process never executes a ``.pth`` file and never imports ``sitecustomize``: its
import path (standard library, project, locked dependencies) is set here and nowhere else.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import CodeType
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from verify.findings import Finding
    from verify.startup import Settings, Verdict

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED_CONFIG = os.path.join(PROJECT_ROOT, "gateway", "data", "default-config.yaml")
DEFAULT_LOCKS = ("requirements.lock", "requirements-build.lock")
TARGET_ENV = "SEALGATE_VERIFY_TARGET_PYTHON"
VERIFY_KEYS = frozenset({"mode", "interval_seconds", "locks", "policies_dir", "policy_key"})
EXIT_REFUSED, EXIT_USAGE = 1, 2


def isolated() -> bool:
    return bool(sys.flags.isolated and sys.flags.no_site and sys.flags.dont_write_bytecode)


def command_line(argv: list[str]) -> list[str]:
    """The launcher's command line for ``argv`` (what the image's ENTRYPOINT spells out)."""
    script = os.path.abspath(__file__)
    if not script.endswith(".py"):
        raise SystemExit(f"sealgate: the launcher must run from its source file, not {script}")
    return [sys.executable, "-I", "-S", "-B", script, *argv]


def main() -> NoReturn:
    """``sealgate ...`` and ``python -m gateway ...``: become the isolated launcher."""
    if isolated():
        sys.exit(launch(sys.argv[1:]))
    if not sys.executable:
        raise SystemExit("sealgate: cannot find the Python interpreter to re-execute")
    os.execv(sys.executable, command_line(sys.argv[1:]))  # noqa: S606 - this interpreter, isolated


def source_only(root: str) -> Callable[[], None]:
    """Until the returned function is called, modules under ``root`` (gateway, verify) load
    from their source files, never from a ``__pycache__`` the check has not yet compared; the
    standard library keeps its bytecode. (verify/__main__.py has the same function: this file
    may not import it, nor its bytecode.)"""
    from importlib.machinery import SOURCE_SUFFIXES, FileFinder, SourceFileLoader

    class SourceOnly(SourceFileLoader):
        def get_code(self, fullname: str) -> CodeType:
            return compile(self.get_data(self.path), self.path, "exec", dont_inherit=True)

    def hook(path: str) -> FileFinder:
        if path == root or path.startswith(root + os.sep):
            return FileFinder(path, (SourceOnly, SOURCE_SUFFIXES))
        raise ImportError(path)

    sys.path_hooks.insert(0, hook)
    sys.path_importer_cache.clear()

    def trust_bytecode() -> None:
        if hook in sys.path_hooks:
            sys.path_hooks.remove(hook)
            sys.path_importer_cache.clear()

    return trust_bytecode


class Refused(Exception):
    """The start is refused: ``code`` is the exit status, the message is for stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def launch(argv: list[str]) -> int:
    """Run ``argv`` (a ``sealgate`` command line without the program name) as described above."""
    sys.dont_write_bytecode = True
    stdlib_path = [p for p in sys.path if p]
    sys.path[:] = [*stdlib_path, PROJECT_ROOT]
    trust_bytecode = source_only(PROJECT_ROOT)
    from verify import facts, startup

    facts.set_stdlib_path(stdlib_path)
    if argv[:1] == ["verify"]:
        try:
            return startup.run_verifier(argv[1:], stdlib_path, trust_bytecode, "sealgate verify")
        finally:
            trust_bytecode()
    try:
        verdict = check(argv, stdlib_path, trust_bytecode)
    except Refused as exc:
        sys.stderr.write(f"sealgate: {str(exc).rstrip()}\n")
        sys.stderr.flush()
        return exc.code
    finally:
        trust_bytecode()
    startup.adopt(verdict)
    if argv[:1] == ["serve"]:
        # SIGTERM is the orderly stop: uvicorn shuts down gracefully, then raises the signal
        # again for whatever handler it found, which is this one: exit 0, not "killed".
        signal.signal(signal.SIGTERM, _stop)
    from gateway.cli import main as gateway_main

    return gateway_main(argv)


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(0)


def check(argv: list[str], stdlib_path: list[str], trust_bytecode: Callable[[], None]) -> Verdict:
    """The verdict for this start (``serve``: the whole check; any other command: stage one),
    or ``Refused``. Leaves the dependencies on ``sys.path`` when it returns."""
    from verify import startup
    from verify.facts import gather

    start = startup.clock()
    try:
        env_mode = startup.mode_from_env()
    except startup.VerifyError as exc:
        raise Refused(EXIT_USAGE, f"configuration error: {exc}") from None
    own = startup.own_layout()
    facts = None
    binding: list[Finding] = []
    if own.bound and env_mode != "off":
        facts = gather(sys.executable, base_path=stdlib_path)
        binding = startup.bind(facts, *startup.manifest_override())
        if startup.problems(binding) and (env_mode or "enforce") == "enforce":
            raise Refused(EXIT_REFUSED, startup.refusal(binding, "the install manifest"))
    trust_bytecode()  # bound (or, outside the layout, nothing to bind it to): as usual
    sys.path += own.dependency_dirs
    if argv[:1] != ["serve"]:
        return startup.Verdict("off")
    settings = settings_for(argv[1:], env_mode)
    if settings.mode == "off":
        return startup.Verdict("off", elapsed=startup.clock() - start, bound=own.bound)
    try:
        if settings.target_python is not None:
            facts = gather(settings.target_python)
            binding = startup.bind(facts) if facts.bound_layout else []
        elif facts is None:
            facts = gather(sys.executable, base_path=stdlib_path)
        found = binding + startup.audit(facts, settings, bound=facts.bound_layout)
    except startup.VerifyError as exc:
        if settings.mode == "enforce":
            raise Refused(EXIT_REFUSED, f"integrity self-check could not run: {exc}") from None
        return startup.Verdict(settings.mode, error=str(exc), elapsed=startup.clock() - start)
    verdict = startup.Verdict(
        settings.mode,
        tuple(found),
        startup.clock() - start,
        facts,
        bound=facts.bound_layout,
        target_python=settings.target_python,
    )
    if verdict.refused:
        signed = startup.problems(startup.policy_bundle_results(found))
        what = "the policy bundle" if signed else "the integrity self-check"
        raise Refused(EXIT_REFUSED, startup.refusal(signed or found, what))
    return verdict


def _config_error(source: str, key: str, problem: str) -> Refused:
    return Refused(EXIT_USAGE, f"configuration error: {source}: verify.{key}: {problem}")


def settings_for(argv: list[str], env_mode: str | None) -> Settings:
    """The check's settings: the config's ``verify`` section (read with ``yaml``, bound by now),
    else ``SEALGATE_VERIFY_LOCKS`` / ``SEALGATE_VERIFY_POLICIES``, else beside the project. The
    gateway validates the whole config again, strictly, once it is imported."""
    import yaml

    from verify.startup import MODES, Settings, manifest_override

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--config", default=os.environ.get("SEALGATE_CONFIG"))
    source = parser.parse_known_args(argv)[0].config or BUNDLED_CONFIG
    try:
        data = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        data = None  # the gateway's own loader names the problem when it reads the file
    section = data.get("verify") if isinstance(data, dict) else None
    section = section if isinstance(section, dict) else {}
    unknown = sorted(set(section) - VERIFY_KEYS)
    if unknown:
        raise _config_error(source, unknown[0], "is not a known key")
    mode = env_mode or section.get("mode", "enforce")
    if mode not in MODES:
        raise _config_error(source, "mode", f"expected one of {', '.join(MODES)}")
    env_locks = [p for p in os.environ.get("SEALGATE_VERIFY_LOCKS", "").split(os.pathsep) if p]
    locks = (
        section.get("locks") or env_locks or [os.path.join(PROJECT_ROOT, n) for n in DEFAULT_LOCKS]
    )
    if not isinstance(locks, list) or not all(isinstance(p, str) for p in locks):
        raise _config_error(source, "locks", "expected a list of paths")
    policies = section.get("policies_dir") or os.environ.get("SEALGATE_VERIFY_POLICIES")
    key = section.get("policy_key")
    for name, value in (("policies_dir", policies), ("policy_key", key)):
        if value is not None and not isinstance(value, str):
            raise _config_error(source, name, "expected a path")
    manifest, manifest_key = manifest_override()
    return Settings(
        mode=str(mode),
        locks=tuple(Path(p) for p in locks),
        policies_dir=Path(policies or os.path.join(PROJECT_ROOT, "policies")),
        policy_key=Path(key) if key else None,
        manifest=manifest,
        manifest_key=manifest_key,
        target_python=os.environ.get(TARGET_ENV) or None,
    )


if __name__ == "__main__":
    sys.exit(launch(sys.argv[1:]))
