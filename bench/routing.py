"""What routing and the response cache cost per request, in process (no server, no network):

- ``Router.plan`` for a group of three deployments under each strategy (the order a request
  will try them in: the strategy, the breaker and health filter), with measured stats in place;
- the cache's key for a typical chat body (canonical JSON and SHA-256) and a hit in the
  in-memory store.

Each is timed in batches; the median batch, per call, is printed in microseconds, beside the
machine's load average (the numbers are noisy on a shared machine: compare within one run).

    .venv-dev/bin/python -m bench.routing [--batch 20000] [--batches 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable

from gateway.cache.responses import ResponseCache
from gateway.cache.stores import MemoryStore
from gateway.config import Deployment
from gateway.config.cache import Cache
from gateway.config.routing import Group
from gateway.config.routing import Router as RouterSettings
from gateway.providers.registry import PROVIDERS
from gateway.routing.router import Route, Router
from gateway.secrets.broker import SecretBroker
from gateway.store.keys import KeyRecord
from tests.support.adapters import ScriptedAdapter

STRATEGIES = ("round_robin", "weighted", "least_busy", "latency", "lowest_cost", "usage")
BODY = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Summarise the quarterly report in three bullet points."},
    ],
    "temperature": 0.2,
    "max_tokens": 256,
}


def router(strategy: str) -> Router:
    routes = []
    for index in range(3):
        d = Deployment.model_validate(
            {"model": "m", "provider": "mock", "id": f"d{index}", "weight": index + 1},
            context={"providers": PROVIDERS},
        )
        route = Route(d, ScriptedAdapter(d.name), None)
        route.stats.observe(0.01 * (index + 1), 0.1 * (index + 1))
        route.stats.in_flight = index
        routes.append(route)
    settings = RouterSettings(groups={"m": Group(strategy=strategy, exploration=0.05)})
    limits = {f"d{i}": (1000, 100000) for i in range(3)}
    return Router(
        settings,
        routes,
        SecretBroker({}, ttl=300, stale=0),
        cost=lambda d, u: 1000 * int(d.name[1:]),
        limits=limits,
    )


def per_call(work: Callable[[], object], batch: int, batches: int) -> float:
    timings = []
    for _ in range(batches):
        started = time.perf_counter()
        for _ in range(batch):
            work()
        timings.append((time.perf_counter() - started) / batch)
    return statistics.median(timings) * 1e6


async def cache_hit(batch: int, batches: int) -> float:
    cache = ResponseCache(Cache(), MemoryStore(3600, 10_000, 1 << 26))
    record = KeyRecord("k1", "h", ("*",), {}, None, None, None, team_id="t1")
    lookup = cache.lookup("chat", record, BODY, {})
    await lookup.put("body", b'{"id":"x"}' * 50)
    timings = []
    for _ in range(batches):
        started = time.perf_counter()
        for _ in range(batch):
            found = cache.lookup("chat", record, BODY, {})
            await found.get()
        timings.append((time.perf_counter() - started) / batch)
    return statistics.median(timings) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing")
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--batches", type=int, default=15)
    args = parser.parse_args(argv)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs")
    print("| what | us per request |\n|---|---|")
    for name in STRATEGIES:
        plan = router(name).plan
        cost = per_call(lambda plan=plan: plan("m"), args.batch, args.batches)
        print(f"| Router.plan, 3 deployments, {name} | {cost:.2f} |")
    hit = asyncio.run(cache_hit(args.batch, args.batches))
    print(f"| cache key + in-memory hit (lookup, get) | {hit:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
