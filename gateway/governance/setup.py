"""Build governance from its config section: counters (in-process, or Redis with its fallback
policy), the spend outbox in the data directory, the first snapshot."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from gateway.config import Deployment
from gateway.config.governance import Governance as GovernanceSettings
from gateway.governance.alerts import AlertSink
from gateway.governance.core import Governance
from gateway.governance.counters import Counters, MemoryCounters
from gateway.governance.price_file import price_table
from gateway.governance.pricing import deployment_prices
from gateway.governance.spend import Outbox


def build_counters(settings: GovernanceSettings, clock: Callable[[], float]) -> Counters:
    if settings.counters == "memory" or settings.redis is None:
        return MemoryCounters(clock)
    # redis-py, only for a gateway whose counters are on Redis (issue 23: idle memory)
    from gateway.governance.redis_counters import FallbackCounters, RedisCounters

    redis = settings.redis
    shared = RedisCounters(redis.url, redis.prefix, redis.timeout_seconds)
    if redis.on_down == "local":
        return FallbackCounters(shared, MemoryCounters(clock))
    return shared


def check_prices(
    settings: GovernanceSettings, deployments: list[Deployment], source: str = "config"
) -> None:
    """ConfigError naming every deployment whose price is not known (``deployment_prices``):
    the composition root asks this before it opens anything."""
    deployment_prices(deployments, settings, price_table(settings, source), source)


def build_governance(
    settings: GovernanceSettings,
    deployments: list[Deployment],
    engine: Engine,
    data_dir: Path,
    source: str = "config",
    clock: Callable[[], float] = time.time,
    alert_sink: AlertSink | None = None,
) -> Governance:
    """``alert_sink`` receives budget alerts (gateway/governance/alerts.py); None: the log."""
    check_prices(settings, deployments, source)
    flush, retry = settings.outbox.flush_seconds, settings.outbox.retry_seconds
    outbox = Outbox(engine, data_dir, flush, retry)
    outbox.start()
    counters = build_counters(settings, clock)
    governance = Governance(
        settings,
        deployments,
        engine,
        outbox,
        counters,
        prices=price_table(settings, source),
        clock=clock,
        alert_sink=alert_sink,
    )
    governance.refresh()
    return governance
