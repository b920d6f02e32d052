"""Reloading the configuration on SIGHUP, without a restart and without dropping a request.

The new file is validated fully (as at start-up: the config itself, the providers' rules, the
egress allowlist) before anything changes; on any problem the gateway keeps serving on the old
configuration and logs why. What a reload applies:

    deployments, router                 a new router, adapters and connection pool
    server.max_body_bytes               the inference routes' body cap
    server.auth_cache_seconds           how long a key lookup is cached
    governance.deployments              each deployment's limits and prices
    governance.default_max_tokens       the token reservation for calls that name none
    guardrails                          the policies, and who runs under which
    logging.level                       the root logger's level

Everything else (storage, secrets, verify, tracing, cache, conversations, mcp, logging.access_log,
the rest of server and of governance: the connection limits are the listening socket's) needs a
restart: a file that changes any of it is refused whole, naming the settings. So is a file with
a deployment that has no price. A request reads the router once when it starts and finishes on
it; the old connection pool is closed once its longest total timeout has passed, so no call still
using it can be cut.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any

from gateway import integrity
from gateway.config import GatewayConfig, guardrails_section
from gateway.errors import ConfigError
from gateway.governance.setup import check_prices
from gateway.guardrails import webhook
from gateway.guardrails.pipeline import Guardrails
from gateway.providers import egress
from gateway.providers.pool import UpstreamPool
from gateway.routing.router import build_router
from gateway.secrets.setup import take_environment

log = logging.getLogger("sealgate.reload")

# Sections a reload may not change, and the parts of the others it may.
RESTART_SECTIONS = (
    "storage",
    "secrets",
    "verify",
    "tracing",
    "cache",
    "conversations",
    "mcp",
    "sinks",
)
RELOADABLE_PARTS = {
    "server": {"max_body_bytes", "auth_cache_seconds"},
    "governance": {"deployments", "default_max_tokens"},
    "logging": {"level"},
}


def restart_only_changes(old: GatewayConfig, new: GatewayConfig) -> list[str]:
    """The settings that differ between ``old`` and ``new`` but take effect only on a restart."""
    changed = [name for name in RESTART_SECTIONS if getattr(old, name) != getattr(new, name)]
    for section, reloadable in RELOADABLE_PARTS.items():
        before, after = getattr(old, section), getattr(new, section)
        for name in type(before).model_fields:
            if name not in reloadable and getattr(before, name) != getattr(after, name):
                changed.append(f"{section}.{name}")
    return changed


class Reloader:
    """Applies a new configuration to a serving gateway (``gateway.serve.Services``)."""

    def __init__(
        self,
        services: Any,
        path: str | os.PathLike[str] | None,
        load: Callable[[str | os.PathLike[str] | None], GatewayConfig],
    ) -> None:
        self.services = services
        self.path = path
        self.load = load
        self.retired: list[UpstreamPool] = []
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    def on_hangup(self) -> None:
        """The SIGHUP handler: reload in the background (one reload at a time)."""
        self._spawn(self.reload())

    async def reload(self) -> bool:
        """Load, check and apply the file; False (and a log line saying why) when the old
        configuration stays."""
        async with self._lock:
            try:
                new = await asyncio.to_thread(self._checked)
            except ConfigError as exc:
                log.error(
                    "configuration not reloaded; still serving the previous one",
                    extra={"sg_reason": str(exc)},
                )
                return False
            self._apply(new)
            log.info(
                "configuration reloaded",
                extra={"sg_models": new.models(), "sg_config": str(self.path or "<bundled>")},
            )
            return True

    def _checked(self) -> GatewayConfig:
        new = self.load(self.path)
        changed = restart_only_changes(self.services.config, new)
        if changed:
            raise ConfigError(
                str(self.path or "<bundled>"),
                ", ".join(changed),
                "changed, and takes effect only on a restart; nothing was reloaded",
            )
        egress.enforce(new.deployments, integrity.policies_dir(new.verify))
        policies = integrity.policies_dir(new.verify)
        webhook.check_egress(guardrails_section(new, policies), policies)
        check_prices(new.governance, new.deployments, str(self.path or "<bundled>"))
        return new

    def _apply(self, new: GatewayConfig) -> None:
        s = self.services
        s.broker.use("env", take_environment(new.secrets.vault, new.credentials()))
        pool = UpstreamPool()
        s.governance.configure(new.governance, new.deployments)
        router = build_router(
            new.router,
            new.deployments,
            pool,
            s.broker,
            new.governance,
            s.governance.cost,
            s.router.breakers,  # breaker state outlives a reload
        )
        guardrails = Guardrails(guardrails_section(new, integrity.policies_dir(new.verify)))
        # The swap: each of these is one attribute store; requests already under way keep
        # the router they read when they started.
        old_pool, old_config, old_router = s.pool, s.config, s.router
        old_guardrails = s.inference.guardrails
        s.router = s.inference.router = router
        if old_router.probes is not None:
            self._spawn(old_router.probes.stop())
        if router.probes is not None:
            router.probes.start()
        s.pool = pool
        s.inference.limit = new.server.max_body_bytes
        s.inference.guardrails = guardrails or None
        s.auth.ttl = new.server.auth_cache_seconds
        s.config = new
        logging.getLogger().setLevel(new.logging.level.upper())
        grace = max((d.timeouts.total for d in old_config.deployments), default=0) + 1
        self.retired.append(old_pool)
        asyncio.get_running_loop().call_later(grace, self._close_later, old_pool)
        if old_guardrails is not None:  # its webhooks' connections, once no request uses them
            asyncio.get_running_loop().call_later(
                grace, lambda: self._spawn(old_guardrails.close())
            )

    def _close_later(self, pool: UpstreamPool) -> None:
        self._spawn(self._close(pool))

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close(self, pool: UpstreamPool) -> None:
        if pool in self.retired:
            self.retired.remove(pool)
            await pool.close()

    async def close(self) -> None:
        """At shutdown: stop reloading, close every pool a reload retired and that is open."""
        for task in list(self._tasks):
            task.cancel()
        for pool in list(self.retired):
            await self._close(pool)
