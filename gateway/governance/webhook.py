"""The webhook sink: events from the sink queue, POSTed as signed JSON batches.

    loop: claim up to batch_size events (a lease) ── POST {"events": [envelope, ...]}
          2xx: ack (they leave the queue); anything else, or no answer within timeout_seconds:
          release them and wait backoff_seconds, doubled per failure up to backoff_max_seconds

The body is signed with HMAC-SHA256 under the sink's secret (a credential reference fetched
through the secret broker): ``x-sealgate-signature: sha256=<hex>``. The connection goes only to
the URL's host, through the same guarded resolver as the providers' (``providers.egress``): a name
that resolves to a private, loopback or link-local address is refused unless the sink allows
private networks. Redirects are not followed. At most one batch is held in memory; the rest waits
in the database, so an outage of the receiver loses nothing and costs no memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from typing import Any

import aiohttp

from gateway.config import WebhookSink as WebhookSettings
from gateway.governance.sink_queue import Event, SinkQueue
from gateway.metrics import METRICS
from gateway.providers.egress import GuardedResolver
from gateway.secrets.broker import SecretBroker

log = logging.getLogger("sealgate.sinks")

SIGNATURE_HEADER = "x-sealgate-signature"
DELIVERED = METRICS.counter("sealgate_sink_events_total", "events a sink's receiver accepted")
FAILURES = METRICS.counter(
    "sealgate_sink_failures_total", "sink deliveries that failed (each retried), by sink"
)
BACKLOG = METRICS.gauge("sealgate_sink_backlog", "events queued for a sink, not yet delivered")


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: the receiver recomputes it over the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def batch_body(events: list[Event]) -> bytes:
    return json.dumps(
        {"events": [event.envelope() for event in events]}, separators=(",", ":")
    ).encode()


class DeliveryFailed(Exception):
    """The receiver did not accept the batch (its reason is a status or an error class)."""


class WebhookSink:
    def __init__(self, settings: WebhookSettings, queue: SinkQueue, broker: SecretBroker) -> None:
        self.settings = settings
        self.name = settings.name
        self._queue = queue
        self._broker = broker
        self._session: aiohttp.ClientSession | None = None
        self._labels = (("sink", settings.name),)
        self._failing: str | None = None  # why the last delivery failed, until one succeeds
        self._backlog = 0
        DELIVERED[self._labels] += 0
        FAILURES[self._labels] += 0

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
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.backoff_max_seconds)
                continue
            backoff = self.settings.backoff_seconds
            if not delivered:
                await asyncio.sleep(self.settings.poll_seconds)

    async def deliver_once(self) -> int:
        """One batch: claimed, POSTed, acknowledged. Returns how many events it held (0: the
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
            await self._post(batch_body(events))
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

    async def _post(self, body: bytes) -> None:
        secret = await self._broker.get(self.settings.secret_ref)
        headers = {
            "content-type": "application/json",
            SIGNATURE_HEADER: sign(secret.reveal(), body),
        }
        try:
            async with self._client().post(
                self.settings.url, data=body, headers=headers, allow_redirects=False
            ) as answer:
                await answer.read()
                if not 200 <= answer.status < 300:
                    raise DeliveryFailed(f"status {answer.status}")
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
            timeout = self.settings.timeout_seconds
            connector = aiohttp.TCPConnector(
                limit=4,
                ttl_dns_cache=60,
                resolver=GuardedResolver(self.settings.host, self.settings.allow_private_network),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=timeout),
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

    def __init__(self, sinks: list[WebhookSink], queue: SinkQueue) -> None:
        self.sinks = sinks
        self.queue = queue
        self._tasks: list[asyncio.Task[None]] = []

    def deliver(self, type_: str, event_id: str, data: dict[str, Any]) -> None:
        """Queue an event of another type (a budget alert, ...) for every sink; blocking (call
        it from a thread)."""
        self.queue.enqueue(type_, event_id, data)

    def start(self) -> None:
        for sink in self.sinks:
            self._tasks.append(asyncio.create_task(sink.run(), name=f"sink-{sink.name}"))

    async def health(self) -> dict[str, Any]:
        return {"sinks": {sink.name: sink.health() for sink in self.sinks}}

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for sink in self.sinks:
            await sink.close()
