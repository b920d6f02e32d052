"""The ``sealgate`` command.

    sealgate serve [--config FILE] [--host H] [--port P] [--data-dir DIR]
    sealgate --version
    sealgate verify ...            the supply-chain verifier (same as ``python -m verify``)
    sealgate sbom ...              the SBOM of the runtime lock (same as ``python -m verify.sbom``)
    sealgate policy check [--policies DIR]   validate every policy file (file, line, key)
    sealgate governance reconcile [--config FILE] [--data-dir DIR] [--json]
                                   budget counters (Redis) against the spend table
    sealgate config import-litellm FILE [--output FILE]
                                   a Sealgate config from a LiteLLM proxy config; every setting
                                   not carried over on stderr, one a line (exit 1 if any)

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
    serve.add_argument(
        "--workers",
        type=int,
        default=_env("SEALGATE_WORKERS", "1"),
        help="serving processes on the port (env SEALGATE_WORKERS; default 1; more than 1 "
        "needs storage.url and governance.counters: redis, so limits stay exact)",
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
    governance = sub.add_parser("governance", help="limits and spend")
    governance_sub = governance.add_subparsers(dest="governance_command", required=True)
    reconcile = governance_sub.add_parser(
        "reconcile",
        help="compare each budget's running counter (Redis) with the spend table; "
        "exit 1 when a counter is below the spend",
    )
    reconcile.add_argument(
        "--config", default=_env("SEALGATE_CONFIG"), help="YAML config (env SEALGATE_CONFIG)"
    )
    reconcile.add_argument(
        "--data-dir",
        default=_env("SEALGATE_DATA_DIR", DEFAULT_DATA_DIR),
        help="state directory, for SQLite (env SEALGATE_DATA_DIR; default .sealgate)",
    )
    reconcile.add_argument("--json", action="store_true", help="one JSON object per budget")
    sub.add_parser(
        "sbom", help="CycloneDX SBOM: generate, verify (see 'sealgate sbom --help')", add_help=False
    )
    config = sub.add_parser("config", help="config files")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    litellm = config_sub.add_parser(
        "import-litellm",
        help="write a Sealgate config from a LiteLLM proxy config (docs/migrating-from-litellm.md)",
    )
    litellm.add_argument("litellm_config", help="the LiteLLM proxy config.yaml")
    litellm.add_argument(
        "--output",
        default=_env("SEALGATE_IMPORT_OUTPUT"),
        help="where to write the Sealgate config (env SEALGATE_IMPORT_OUTPUT; default stdout)",
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


def _reconcile(config_path: str | None, data_dir: Path, as_json: bool) -> int:
    import json
    from collections.abc import Sequence
    from datetime import UTC, datetime

    import redis
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.governance.reconcile import reconcile, render
    from gateway.serve import load_config
    from gateway.store.db import default_url, make_engine

    config = load_config(config_path)
    settings = config.governance
    if settings.counters != "redis" or settings.redis is None:
        print(
            "sealgate: governance reconcile: the counters are in each process's memory "
            "(governance.counters: memory); there is no shared counter to compare",
            file=sys.stderr,
        )
        return 2
    engine = make_engine(
        config.storage.url or default_url(data_dir), config.storage.timeout_seconds
    )
    client = redis.Redis.from_url(settings.redis.url, socket_timeout=settings.redis.timeout_seconds)
    prefix = "{" + settings.redis.prefix + "}:"

    def read(keys: Sequence[str]) -> list[int | None]:
        values = client.mget([prefix + key for key in keys])
        return [int(value) if value is not None else None for value in values]

    try:
        lines = reconcile(engine, read, datetime.now(UTC))
    except (redis.RedisError, SQLAlchemyError, OSError) as exc:
        # the type only: a driver's message may carry connection details
        print(f"sealgate: governance reconcile failed: {type(exc).__name__}", file=sys.stderr)
        return 2
    finally:
        client.close()
        engine.dispose()
    if as_json:
        for line in lines:
            print(json.dumps(line.public()))
    else:
        print(render(lines))
    under = sum(line.status == "under" for line in lines)
    print(
        f"sealgate: governance reconcile: {len(lines)} budget(s), {under} below the spend table",
        file=sys.stderr,
    )
    return 1 if under else 0


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
                worker_count=args.workers,
            )
        except ConfigError as exc:
            print(f"sealgate: configuration error: {exc}", file=sys.stderr)
            return 2
    if args.command == "policy":
        return _policy_check(args.policies)
    if args.command == "governance":
        try:
            return _reconcile(args.config, Path(args.data_dir), args.json)
        except ConfigError as exc:
            print(f"sealgate: configuration error: {exc}", file=sys.stderr)
            return 2
    if args.command == "config":
        from gateway.config_import import import_litellm

        return import_litellm(args.litellm_config, args.output)
    parser.error(f"unknown command {args.command}")
    return 2
