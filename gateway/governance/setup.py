"""Build governance from the config: counters (in-process, or Redis with its fallback policy),
the spend outbox in the data directory, the first snapshot."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from gateway.config import GatewayConfig
from gateway.errors import ConfigError
from gateway.governance.core import Governance
from gateway.governance.counters import Counters, MemoryCounters
from gateway.governance.redis_counters import FallbackCounters, RedisCounters
from gateway.governance.spend import Outbox


def build_counters(config: GatewayConfig, clock: Callable[[], float]) -> Counters:
    settings = config.governance
    if settings.counters == "memory" or settings.redis is None:
        return MemoryCounters(clock)
    redis = settings.redis
    shared = RedisCounters(redis.url, redis.prefix, redis.timeout_seconds)
    if redis.on_down == "local":
        return FallbackCounters(shared, MemoryCounters(clock))
    return shared


def build_governance(
    config: GatewayConfig,
    engine: Engine,
    data_dir: Path,
    source: str = "config",
    clock: Callable[[], float] = time.time,
) -> Governance:
    names = {d.name for d in config.deployments}
    for name in config.governance.deployments:
        if name not in names:
            raise ConfigError(
                source,
                f"governance.deployments.{name}",
                f"names no deployment; known: {', '.join(sorted(names))}",
            )
    settings = config.governance.outbox
    outbox = Outbox(engine, data_dir, settings.flush_seconds, settings.retry_seconds)
    outbox.start()
    governance = Governance(config, engine, outbox, build_counters(config, clock), clock=clock)
    governance.refresh()
    return governance
