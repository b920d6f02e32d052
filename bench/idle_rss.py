"""Idle memory of a gateway on embedded defaults (issue 23, item 3), started the way a user starts
it: ``make run``'s command line (the isolated launcher of the runtime venv ``.venv``, the bundled
config, SQLite in a fresh data directory), or with ``--dev`` the dev venv's ``python -m gateway
serve`` on the bundled deployments with verify off. After ``/health/ready`` answers, and a
settle time, it reads VmRSS (and its anonymous and file-backed parts) from
``/proc/<pid>/status`` of the one serving process.

    python -m bench.idle_rss [--dev] [--runs 3] [--settle 3]

``make install`` first for the default mode (``make run`` does it too).
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.procs import Children, child_env, free_port, wait_ready

ROOT = Path(__file__).resolve().parent.parent
FIELDS = ("VmRSS", "RssAnon", "RssFile")


def command(dev: bool, port: int, tmp: Path) -> list[str]:
    if dev:
        # The dev venv is not the signed install: the bundled deployments with verify off.
        config = tmp / "gateway.yaml"
        bundled = (ROOT / "gateway" / "data" / "default-config.yaml").read_text()
        config.write_text(bundled + 'verify:\n  mode: "off"\n')
        python = ROOT / ".venv-dev" / "bin" / "python"
        serve = ["serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
        return [str(python), "-m", "gateway", *serve]
    python = ROOT / ".venv" / "bin" / "python"
    boot = next((ROOT / ".venv" / "lib").glob("python3*/site-packages/gateway/boot.py"))
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    return [str(python), "-I", "-S", "-B", str(boot), *serve]


def status_kb(pid: int) -> dict[str, int]:
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in FIELDS:
            found[name] = int(value.split()[0])
    return found


def one(dev: bool, settle: float) -> dict[str, int]:
    with tempfile.TemporaryDirectory(prefix="sg-idle-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir(mode=0o700)
        key = Path(tmp) / "admin.key"
        key.write_text("sga-" + secrets.token_urlsafe(32))
        key.chmod(0o600)
        env = {
            "SEALGATE_ADMIN_KEY_FILE": str(key),
            "SEALGATE_DATA_DIR": str(data),
        }
        if not dev:
            env["SEALGATE_VERIFY_LOCKS"] = str(ROOT / "requirements.lock")
            env["SEALGATE_VERIFY_POLICIES"] = str(ROOT / "policies")
        port = free_port()
        with Children(Path(tmp)) as children:
            child = children.start(
                "gateway", command(dev, port, Path(tmp)), env=child_env(env), cwd=ROOT
            )
            wait_ready(child, f"http://127.0.0.1:{port}/health/ready", 60)
            time.sleep(settle)
            return status_kb(child.proc.pid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_rss")
    parser.add_argument("--dev", action="store_true", help="the dev venv, not make run's")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after ready")
    args = parser.parse_args(argv)
    runs = [one(args.dev, args.settle) for _ in range(args.runs)]
    for found in runs:
        print("  ".join(f"{k} {found[k] / 1024:.1f} MB" for k in FIELDS if k in found))
    median = statistics.median(r["VmRSS"] for r in runs) / 1024
    print(f"median VmRSS {median:.1f} MB over {len(runs)} runs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
