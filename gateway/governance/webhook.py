"""The webhook sink: each batch of events POSTed as one signed JSON body (``sinks.py`` runs the
loop: claim, send, ack or retry with backoff).

The body is ``{"events": [envelope, ...]}``, signed with HMAC-SHA256 under the sink's secret (a
credential reference fetched through the secret broker): ``x-sealgate-signature: sha256=<hex>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from gateway.config import WebhookSink as WebhookSettings
from gateway.governance.sink_queue import Event, SinkQueue
from gateway.governance.sinks import QueueSink
from gateway.secrets.broker import SecretBroker

SIGNATURE_HEADER = "x-sealgate-signature"


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: the receiver recomputes it over the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def batch_body(events: list[Event]) -> bytes:
    return json.dumps(
        {"events": [event.envelope() for event in events]}, separators=(",", ":")
    ).encode()


class WebhookSink(QueueSink):
    def __init__(self, settings: WebhookSettings, queue: SinkQueue, broker: SecretBroker) -> None:
        super().__init__(settings, queue)
        self._webhook = settings
        self._broker = broker

    async def send(self, events: list[Event]) -> None:
        body = batch_body(events)
        secret = await self._broker.get(self._webhook.secret_ref)
        headers = {
            "content-type": "application/json",
            SIGNATURE_HEADER: sign(secret.reveal(), body),
        }
        await self.request("POST", self._webhook.url, body, headers)
