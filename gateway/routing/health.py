"""Background health probes of the deployments (``router.health_checks``).

Every ``interval_seconds`` each deployment gets one cheap request of what it serves (its
``mode``: a one-token chat completion, the embedding of one word, or the rerank of one
document), sent the way any request is: the key fetched just in time through the secrets
broker, a refused key refetched once. A probe that fails, or does not answer within
``timeout_seconds``, marks the deployment unhealthy: routing puts it behind every healthy one
(it is still tried when nothing else is left) until a probe succeeds again. The results are in
``/health/ready`` (as details: an upstream's outage does not make the replica unready) and in
``sealgate_deployment_healthy``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.config.routing import HealthChecks
from gateway.errors import GatewayError
from gateway.metrics import METRICS

log = logging.getLogger("sealgate.routing")

HEALTHY = METRICS.gauge(
    "sealgate_deployment_healthy", "1 when a deployment's last health probe succeeded, else 0"
)
PROBE = {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
EMBEDDINGS_PROBE = {"input": "ping"}
RERANK_PROBE = {"query": "ping", "documents": ["ping"], "top_n": 1}


class Probes:
    """Runs the probes of one router: ``probe(name)`` sends one and raises on failure."""

    def __init__(
        self,
        settings: HealthChecks,
        names: list[str],
        probe: Callable[[str], Awaitable[Any]],
        mark: Callable[[str, bool], None],
    ) -> None:
        self._settings = settings
        self._names = names
        self._probe = probe
        self._mark = mark
        self._task: asyncio.Task[None] | None = None
        self.results: dict[str, dict[str, Any]] = {}

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self.round()
            await asyncio.sleep(self._settings.interval_seconds)

    async def round(self) -> None:
        """Probe every deployment once, all at the same time."""
        await asyncio.gather(*(self._one(name) for name in self._names))

    async def _one(self, name: str) -> None:
        error: str | None = None
        try:
            async with asyncio.timeout(self._settings.timeout_seconds):
                await self._probe(name)
        except TimeoutError:
            error = "timeout"
        except GatewayError as exc:
            error = exc.code
        ok = error is None
        if not ok and self.results.get(name, {}).get("ok", True):
            log.warning("deployment unhealthy", extra={"sg_deployment": name, "sg_error": error})
        self.results[name] = {"ok": ok, **({"error": error} if error else {}), "at": time.time()}
        HEALTHY[(("deployment", name),)] = 1 if ok else 0
        self._mark(name, ok)
