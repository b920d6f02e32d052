"""``python -m verify`` / ``sealgate verify``: run checks, render the report, map it to an exit.

Exit status: 0 every result ok; 1 at least one finding, skipped or errored result; 2 usage or
environment error (bad arguments, unreadable lock or policy, target interpreter not runnable).
The report goes to stdout; logs and the one-line summary go to stderr. Every option can also be
set by an environment variable (named in ``--help``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from verify import render, selfcheck
from verify.findings import Finding, Report, VerifyError
from verify.policies import default_dir

DEFAULT_LOCKS = ("requirements.lock", "requirements-build.lock")
EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"SEALGATE_VERIFY_{name}", default)


def _env_list(name: str, default: Sequence[str]) -> list[str]:
    value = _env(name)
    return [v for v in value.split(os.pathsep) if v] if value else list(default)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=render.FORMATS,
        default=_env("FORMAT", "text"),
        help="report format (env SEALGATE_VERIFY_FORMAT; default text)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        default=_env("VERBOSE", "") == "1",
        help="text format: list ok results too (env SEALGATE_VERIFY_VERBOSE=1)",
    )


def _env_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target-python",
        default=_env("TARGET_PYTHON", sys.executable),
        help="interpreter whose environment is audited, e.g. .venv/bin/python "
        "(env SEALGATE_VERIFY_TARGET_PYTHON; default: this interpreter)",
    )
    parser.add_argument(
        "--lock",
        action="append",
        default=None,
        help="hash-locked requirements file, repeatable (env SEALGATE_VERIFY_LOCKS, "
        f"{os.pathsep}-separated; default: {' + '.join(DEFAULT_LOCKS)})",
    )
    parser.add_argument(
        "--policies",
        default=_env("POLICIES", str(default_dir())),
        help="policy directory (env SEALGATE_VERIFY_POLICIES; default: policies/ beside the "
        "project, as for sealgate serve)",
    )
    parser.add_argument(
        "--wheelhouse",
        default=_env("WHEELHOUSE"),
        help="directory of the wheels the environment was installed from: also check each "
        "wheel's sha256 against the lock and its RECORD against the installed files "
        "(env SEALGATE_VERIFY_WHEELHOUSE)",
    )
    parser.add_argument(
        "--manifest",
        default=_env("MANIFEST"),
        help="signed install manifest from 'verify manifest create' (default in Sealgate's "
        "layout: lib/sealgate-manifest.json of the venv; env SEALGATE_VERIFY_MANIFEST)",
    )
    parser.add_argument(
        "--manifest-key",
        default=_env("MANIFEST_KEY"),
        help="pinned ECDSA P-256 public key (PEM) of the manifest (default in Sealgate's "
        "layout: lib/sealgate-manifest.pub of the venv; env SEALGATE_VERIFY_MANIFEST_KEY)",
    )
    parser.add_argument(
        "--project",
        default=_env("PROJECT", "sealgate"),
        help="distribution expected in addition to the lock (the project itself, installed "
        "editable); empty for none (env SEALGATE_VERIFY_PROJECT; default sealgate)",
    )


def build_parser(prog: str = "verify") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Sealgate supply-chain verifier. Exit 0 clean, 1 findings, 2 usage or "
        "environment error. Report on stdout, logs on stderr.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (
        (
            "env",
            "all environment checks: pth + lock, and manifest (Sealgate's install layout) or "
            "record (any other); + wheelhouse with --wheelhouse",
        ),
        ("pth", ".pth files and sitecustomize/usercustomize against the allowlist"),
        ("record", "every installed file against its distribution's RECORD; unowned files"),
        ("lock", "installed distributions and versions equal the lock"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        _env_options(p)
        _common(p)
    from verify import commands

    commands.add_parsers(sub, _common, _env)
    return parser


def _environment(args: argparse.Namespace) -> Report:
    checks = None if args.command == "env" else (args.command,)
    locks = [Path(p) for p in (args.lock or _env_list("LOCKS", DEFAULT_LOCKS))]
    project = (args.project,) if args.project else ()
    wheels = Path(args.wheelhouse) if args.wheelhouse else None
    if wheels is not None and not wheels.is_dir():
        raise VerifyError(f"wheelhouse {wheels} is not a directory")
    signed = None
    if args.manifest or args.manifest_key:  # either alone: the other is the layout's own
        signed = (
            Path(args.manifest) if args.manifest else None,
            Path(args.manifest_key) if args.manifest_key else None,
        )
    return selfcheck.run(
        args.target_python, locks, Path(args.policies), checks, project, wheels, signed
    )


def _timed(fn: Callable[[], list[Finding]]) -> Report:
    start = time.perf_counter()
    results = fn()
    return Report(tuple(results), time.perf_counter() - start)


def _log(message: str) -> None:
    sys.stderr.write(f"verify: {message}\n")


def main(argv: Sequence[str] | None = None, prog: str = "verify") -> int:
    """``prog``: how the usage lines name the command (``sealgate verify`` through sealgate)."""
    parser = build_parser(prog)
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse: --help is 0, bad usage is 2
        return int(exc.code or 0) if isinstance(exc.code, int | None) else EXIT_ERROR
    if getattr(args, "lock_env", False) and args.lock is None:
        args.lock = _env_list("LOCKS", DEFAULT_LOCKS)
    try:
        if args.command in ("env", *selfcheck.ENV_CHECKS):
            report = _environment(args)
        else:
            report = _timed(lambda: args.run(args))
    except VerifyError as exc:
        _log(f"error: {exc}")
        return EXIT_ERROR
    sys.stdout.write(render.render(report, args.format, args.verbose))
    _log(render.summary(report))
    return EXIT_CLEAN if report.clean else EXIT_FINDINGS
