"""`python -m bench.curves`: how the gateway's own costs grow, in process (no server, no network).

    python -m bench.curves [--keys 1,10000,1000000] [--deployments 1,100,1000]

- virtual keys in the database (SQLite, embedded defaults): a key's lookup by id (what a cache
  miss costs: the auth path's only query), an authenticated request's check with the key cached,
  and start-up (config, migrations, every subsystem built: ``serve.build_services``);
- deployments in the config: the config's validation, start-up, and ``Router.plan`` for one
  model among them (each deployment its own model) and for one group holding all of them;
- request body size: the strict JSON parse and the chat validation of a body of 1 KB, 100 KB
  and 4 MB (one message of that size), per KB.

Each timing is the median of repeated batches, in microseconds (milliseconds for start-up).
Prints markdown with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from gateway.api import bodies, validation
from gateway.auth import AdminCredential, Authenticator
from gateway.serve import build_services, parse_config
from gateway.store.db import default_url, ensure_data_dir, make_engine, migrate
from gateway.store.keys import KeyStore

ADMIN = "sga-curves-" + "x" * 32


def per_call(work: Callable[[], object], batch: int, batches: int = 7) -> float:
    timings = []
    for _ in range(batches):
        started = time.perf_counter()
        for _ in range(batch):
            work()
        timings.append((time.perf_counter() - started) / batch)
    return statistics.median(timings) * 1e6


def config_text(deployments: int, extra: str = "") -> str:
    lines = ["deployments:"]
    for i in range(deployments):
        lines += [f"  - model: m{i}", "    provider: mock", f"    id: d{i}"]
    return "\n".join(lines) + '\nverify:\n  mode: "off"\n' + extra


def startup_ms(text: str, data_dir: Path) -> float:
    started = time.perf_counter()
    services = build_services(parse_config(text, "curves"), data_dir, AdminCredential(ADMIN))
    took = (time.perf_counter() - started) * 1000
    services.engine.dispose()
    services.data_dir_lock.close()
    return took


def fill_keys(path: Path, count: int) -> None:
    """``count`` made-up rows in virtual_keys, straight through sqlite3 (fast enough for 1M)."""
    now = datetime.now(UTC).isoformat(sep=" ")
    with sqlite3.connect(path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(virtual_keys)")]
        fixed = {"models": '["m0"]', "metadata": "{}", "created_at": now}
        marks = ",".join("?" for _ in columns)
        rows = (
            tuple(
                f"k{i:011d}" if c == "id" else ("h" * 64 if c == "key_hash" else fixed.get(c))
                for c in columns
            )
            for i in range(count)
        )
        db.executemany(f"INSERT INTO virtual_keys ({','.join(columns)}) VALUES ({marks})", rows)


async def auth_cached(auth: Authenticator, header: str, batch: int) -> float:
    timings = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(batch):
            await auth.authenticate(header)
        timings.append((time.perf_counter() - started) / batch)
    return statistics.median(timings) * 1e6


def keys_curve(counts: list[int]) -> list[str]:
    out = ["| virtual keys | lookup by id (cache miss) us | auth, key cached us | start-up ms |"]
    out.append("|---|---|---|---|")
    for count in counts:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp)
            ensure_data_dir(data)
            engine = make_engine(default_url(data), 5.0)
            migrate(engine)
            store = KeyStore(engine)
            key, record = store.create(["m0"])
            fill_keys(data / "sealgate.db", count - 1)
            lookup = per_call(lambda s=store, r=record.id: s.get(r), 300)
            auth = Authenticator(store, 30.0)
            cached = asyncio.run(auth_cached(auth, f"Bearer {key}", 5000))
            engine.dispose()
            boot = statistics.median(startup_ms(config_text(1), data) for _ in range(3))
        out.append(f"| {count:,} | {lookup:.0f} | {cached:.1f} | {boot:.0f} |")
    return out


def deployments_curve(counts: list[int]) -> list[str]:
    out = [
        "| deployments | config validation ms | start-up ms | plan, 1 of N models us "
        "| plan, 1 group of N us |",
        "|---|---|---|---|---|",
    ]
    for count in counts:
        text = config_text(count)
        started = time.perf_counter()
        parse_config(text, "curves")
        parsed = (time.perf_counter() - started) * 1000
        with tempfile.TemporaryDirectory() as tmp:
            boot = startup_ms(text, Path(tmp))
            config = parse_config(text, "curves")
            services = build_services(config, Path(tmp) / "b", AdminCredential(ADMIN))
            plan_one = per_call(lambda r=services.router: r.plan("m0"), 2000)
            services.engine.dispose()
            services.data_dir_lock.close()
            grouped = "".join(
                f"  - model: g\n    provider: mock\n    id: d{i}\n" for i in range(count)
            )
            one_group = "deployments:\n" + grouped + 'verify:\n  mode: "off"\n'
            services = build_services(
                parse_config(one_group, "curves"), Path(tmp) / "c", AdminCredential(ADMIN)
            )
            plan_group = per_call(lambda r=services.router: r.plan("g"), 200)
            services.engine.dispose()
            services.data_dir_lock.close()
        out.append(f"| {count:,} | {parsed:.0f} | {boot:.0f} | {plan_one:.1f} | {plan_group:.1f} |")
    return out


def body_curve(sizes: list[int]) -> list[str]:
    out = ["| body | parse + validate us | us per KB |", "|---|---|---|"]
    for size in sizes:
        content = "x" * (size - 80)
        raw = json.dumps({"model": "m0", "messages": [{"role": "user", "content": content}]})
        data = raw.encode()

        def work(data: bytes = data) -> None:
            validation.check_chat(bodies.parse(data))

        cost = per_call(work, max(3, 2_000_000 // size))
        out.append(
            f"| {len(data) / 1024:,.0f} KB | {cost:,.0f} | {cost / (len(data) / 1024):.2f} |"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.curves", description=__doc__)
    parser.add_argument("--keys", default="1,10000,1000000")
    parser.add_argument("--deployments", default="1,100,1000")
    parser.add_argument("--bodies", default="1024,102400,4194304")
    args = parser.parse_args(argv)
    load = [round(x, 2) for x in os.getloadavg()]
    lines = [f"Load average {load} at start.", ""]
    lines += [*keys_curve([int(x) for x in args.keys.split(",")]), ""]
    lines += [*deployments_curve([int(x) for x in args.deployments.split(",")]), ""]
    lines += body_curve([int(x) for x in args.bodies.split(",")])
    lines += ["", f"Load average {[round(x, 2) for x in os.getloadavg()]} at end."]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
