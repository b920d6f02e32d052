"""The ``sealgate`` command.

    sealgate serve [--config FILE] [--host H] [--port P] [--data-dir DIR]
    sealgate --version
    sealgate verify ...            the supply-chain verifier (same as ``python -m verify``)
    sealgate sbom ...              the SBOM of the runtime lock (same as ``python -m verify.sbom``)
    sealgate policy check [--policies DIR]   validate every policy file (file, line, key)

Every option can also be set by an environment variable (named in ``--help``). Exit codes: 0 ok,
1 findings or refused start-up, 2 usage or environment error.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata
from pathlib import Path

from gateway.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4000
DEFAULT_DATA_DIR = ".sealgate"


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"expected a TCP port from 1 to 65535, got {text!r}")
    return int(text)


def _version() -> str:
    try:
        return metadata.version("sealgate")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sealgate", description="Sealgate LLM gateway")
    parser.add_argument("--version", action="version", version=f"sealgate {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument(
        "--config",
        default=_env("SEALGATE_CONFIG"),
        help="YAML config (env SEALGATE_CONFIG; default: the bundled example with a mock model)",
    )
    serve.add_argument(
        "--host", default=_env("SEALGATE_HOST", DEFAULT_HOST), help="env SEALGATE_HOST"
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=_env("SEALGATE_PORT", str(DEFAULT_PORT)),
        help="env SEALGATE_PORT",
    )
    serve.add_argument(
        "--data-dir",
        default=_env("SEALGATE_DATA_DIR", DEFAULT_DATA_DIR),
        help="state directory for SQLite (env SEALGATE_DATA_DIR; default .sealgate)",
    )
    sub.add_parser(
        "verify", help="supply-chain verifier (see 'sealgate verify --help')", add_help=False
    )
    policy = sub.add_parser("policy", help="policy files")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    policy_check = policy_sub.add_parser(
        "check", help="validate every policy file with the loader that reads it"
    )
    policy_check.add_argument(
        "--policies",
        default=_env("SEALGATE_VERIFY_POLICIES"),
        help="policy directory (env SEALGATE_VERIFY_POLICIES; default: policies/ beside the "
        "gateway package)",
    )
    sub.add_parser(
        "sbom", help="CycloneDX SBOM: generate, verify (see 'sealgate sbom --help')", add_help=False
    )
    return parser


def _policy_check(directory: str | None) -> int:
    from gateway.policy_files import check
    from verify.policies import default_dir

    problems = check(Path(directory) if directory else default_dir())
    for problem in problems:
        print(problem)  # the result, on stdout; the summary is a log line, on stderr
    print(f"sealgate: policy check: {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["verify"]:
        from verify.cli import main as verify_main

        return verify_main(args_list[1:], prog="sealgate verify")
    if args_list[:1] == ["sbom"]:
        from verify.sbom import main as sbom_main

        return sbom_main(args_list[1:], prog="sealgate sbom")
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command == "serve":
        from gateway.serve import serve

        try:
            return serve(
                config_path=args.config,
                host=args.host,
                port=args.port,
                data_dir=Path(args.data_dir),
            )
        except ConfigError as exc:
            print(f"sealgate: configuration error: {exc}", file=sys.stderr)
            return 2
    if args.command == "policy":
        return _policy_check(args.policies)
    parser.error(f"unknown command {args.command}")
    return 2
