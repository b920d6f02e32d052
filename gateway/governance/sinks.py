"""The sinks' delivery loop, shared by every kind (``webhook.py``, ``s3.py``, ``otlp_logs.py``).

    loop: claim up to batch_size events (a lease) ── send them (the kind's ``send``)
          accepted: ack (they leave the queue); refused, or no answer within timeout_seconds:
          release them and wait backoff_seconds, doubled per failure up to backoff_max_seconds

At most one batch is held in memory; the rest waits in the database (``sink_queue.py``), so an
outage of the receiver loses nothing and costs no memory. Each sink's connections go only to its
URL's host, through the providers' guarded resolver (``providers.egress``): a name that resolves
to a private, loopback or link-local address is refused unless the sink allows private networks.
Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from gateway.governance.alerts import BudgetAlert, LogSink
from gateway.governance.sink_events import EventBatcher
from gateway.governance.sink_queue import Event, SinkQueue
from gateway.metrics import METRICS
from gateway.providers.egress import GuardedResolver

log = logging.getLogger("sealgate.sinks")

DELIVERED = METRICS.counter("sealgate_sink_events_total", "events a sink's receiver accepted")
FAILURES = METRICS.counter(
    "sealgate_sink_failures_total", "sink deliveries that failed (each retried), by sink"
)
STOP_SECONDS = 10.0  # the longest shutdown waits to queue the access events still in memory
BACKLOG = METRICS.gauge("sealgate_sink_backlog", "events queued for a sink, not yet delivered")


class SinkSettings(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def allow_private_network(self) -> bool: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def timeout_seconds(self) -> float: ...
    @property
    def backoff_seconds(self) -> float: ...
    @property
    def backoff_max_seconds(self) -> float: ...
    @property
    def poll_seconds(self) -> float: ...


class DeliveryFailed(Exception):
    """The receiver did not accept the batch (its reason is a status or an error class)."""


def jsonl(events: list[Event]) -> bytes:
    """One envelope per line."""
    return b"".join(
        json.dumps(event.envelope(), separators=(",", ":")).encode() + b"\n" for event in events
    )


class QueueSink:
    """A sink's loop over the queue; a kind provides ``send``."""

    def __init__(self, settings: SinkSettings, queue: SinkQueue) -> None:
        self.settings = settings
        self.name = settings.name
        self._queue = queue
        self._session: aiohttp.ClientSession | None = None
        self._labels = (("sink", settings.name),)
        self._failing: str | None = None  # why the last delivery failed, until one succeeds
        self._backlog = 0
        DELIVERED[self._labels] += 0
        FAILURES[self._labels] += 0

    async def send(self, events: list[Event]) -> None:
        """Deliver one batch, or raise DeliveryFailed."""
        raise NotImplementedError

    # A lease outlives one attempt, so no other replica takes the batch meanwhile.
    @property
    def lease_seconds(self) -> float:
        return self.settings.timeout_seconds * 2 + 5

    async def run(self) -> None:
        """Deliver until cancelled."""
        backoff = self.settings.backoff_seconds
        while True:
            try:
                delivered = await self.deliver_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the sink must outlive any one failure
                self._failed(exc)
                with contextlib.suppress(Exception):  # the database may be what failed
                    await self._note_backlog()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.backoff_max_seconds)
                continue
            backoff = self.settings.backoff_seconds
            if not delivered:
                await asyncio.sleep(self.settings.poll_seconds)

    async def deliver_once(self) -> int:
        """One batch: claimed, sent, acknowledged. Returns how many events it held (0: the
        queue was empty); raises when the receiver did not take it (the batch is released)."""
        queue, settings = self._queue, self.settings
        events = await asyncio.to_thread(
            queue.claim, self.name, settings.batch_size, self.lease_seconds
        )
        if not events:
            await self._note_backlog()
            return 0
        seqs = [event.seq for event in events]
        try:
            await self.send(events)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(queue.release, seqs))
            raise
        await asyncio.to_thread(queue.ack, seqs)
        DELIVERED[self._labels] += len(events)
        if self._failing is not None:
            log.warning("sink delivering again", extra={"sg_sink": self.name})
        self._failing = None
        await self._note_backlog()
        return len(events)

    async def request(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> bytes:
        """One HTTP call to the receiver, its answer's body; anything but a 2xx answer is
        DeliveryFailed."""
        try:
            async with self._client().request(
                method, url, data=body, headers=headers, allow_redirects=False
            ) as answer:
                data = await answer.read()
                if not 200 <= answer.status < 300:
                    raise DeliveryFailed(f"status {answer.status}")
                return data
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise DeliveryFailed(type(exc).__name__) from None

    def _failed(self, exc: BaseException) -> None:
        FAILURES[self._labels] += 1
        reason = str(exc) if isinstance(exc, DeliveryFailed) else type(exc).__name__
        if self._failing is None:
            log.warning(
                "sink delivery failed; retrying with backoff",
                extra={"sg_sink": self.name, "sg_error": reason},
            )
        self._failing = reason

    async def _note_backlog(self) -> None:
        self._backlog = (await asyncio.to_thread(self._queue.backlog)).get(self.name, 0)
        BACKLOG[self._labels] = self._backlog

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=4,
                ttl_dns_cache=60,
                resolver=GuardedResolver(self.settings.host, self.settings.allow_private_network),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent",),
                headers={"User-Agent": "sealgate"},
                raise_for_status=False,
            )
        return self._session

    def health(self) -> dict[str, Any]:
        """Always ``ok``: a receiver's outage is what the queue is for; the backlog and the last
        failure show it."""
        return {"ok": True, "backlog": self._backlog, "failing": self._failing}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class Sinks:
    """Every configured sink's delivery loop, and what readiness and metrics show of them."""

    def __init__(
        self,
        sinks: list[QueueSink],
        queue: SinkQueue,
        directory: Path,
        stop_seconds: float = STOP_SECONDS,
    ) -> None:
        self.sinks = sinks
        self.queue = queue
        self._tasks: list[asyncio.Task[None]] = []
        # Access events come at request rate: batched into the queue from a thread, through an
        # outbox file in the data directory while the database fails.
        self.events = EventBatcher(queue, directory, stop_seconds) if sinks else None

    def deliver(self, type_: str, event_id: str, data: dict[str, Any]) -> None:
        """Queue an event of another type (a budget alert, ...) for every sink; blocking (call
        it from a thread)."""
        self.queue.enqueue(type_, event_id, data)

    async def start(self) -> None:
        if self.events is not None:
            # What an earlier run left in the outbox file is queued first, before serving.
            await asyncio.to_thread(self.events.start)
        for sink in self.sinks:
            self._tasks.append(asyncio.create_task(sink.run(), name=f"sink-{sink.name}"))

    async def health(self) -> dict[str, Any]:
        return {"sinks": {sink.name: sink.health() for sink in self.sinks}}

    async def close(self) -> None:
        if self.events is not None:
            await asyncio.to_thread(self.events.stop)  # what waits goes into the queue first
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for sink in self.sinks:
            await sink.close()


class AlertEvents:
    """The budget alerts' sink (``alerts.AlertSink``): each alert logged as the default sink
    logs it, and queued for every configured sink as a ``budget_alert`` event, whose id is the
    alert's own (budget, period, kind), so a receiver can drop a resend. Alerts are recorded
    once across replicas (alerts.py), so each is queued once."""

    def __init__(self) -> None:
        self.sinks: Sinks | None = None  # set once the sinks are built (serve.build_services)
        self._log = LogSink()

    async def deliver(self, alert: BudgetAlert) -> None:
        await self._log.deliver(alert)
        sinks = self.sinks
        if sinks is None or not sinks.sinks:
            return  # no sink configured: the queue would hold nothing for it
        event_id = f"alert-{alert.budget_id}-{alert.period_label}-{alert.kind}"
        await asyncio.to_thread(sinks.deliver, "budget_alert", event_id, alert.public())
