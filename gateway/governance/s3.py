"""The S3-compatible sink: each batch of events PUT as one JSONL object (``sinks.py`` runs the
loop: claim, send, ack or retry with backoff).

Objects are named ``<prefix>dt=<YYYY-MM-DD>/<first seq>-<last seq>.jsonl`` (the day the batch was
sent, UTC; the queue's sequence numbers of its first and last event), addressed path-style
(``endpoint/bucket/key``) so any S3-compatible store works, and signed with AWS Signature V4 by
botocore's signer (``S3SigV4Auth``: the payload's sha256 is signed too). The name needs no
quoting: the config allows only letters, digits and ``_./-`` in the prefix. The access key id
and secret come through the secret broker.

botocore (about 17 MB resident) is imported when the first S3 sink is built, not with this
module: a gateway with no S3 sink never loads it (issue 23, idle memory).
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime

from gateway.config import S3Sink as S3Settings
from gateway.governance.sink_queue import Event, SinkQueue
from gateway.governance.sinks import QueueSink, jsonl
from gateway.secrets.broker import SecretBroker


def object_key(prefix: str, events: list[Event], now: datetime) -> str:
    return f"{prefix}dt={now:%Y-%m-%d}/{events[0].seq:012d}-{events[-1].seq:012d}.jsonl"


class S3Sink(QueueSink):
    def __init__(self, settings: S3Settings, queue: SinkQueue, broker: SecretBroker) -> None:
        super().__init__(settings, queue)
        for module in ("botocore.auth", "botocore.awsrequest", "botocore.credentials"):
            importlib.import_module(module)  # now, at start-up, not in the first send
        self._s3 = settings
        self._broker = broker

    async def send(self, events: list[Event]) -> None:
        settings = self._s3
        body = jsonl(events)
        key = object_key(settings.prefix, events, datetime.now(UTC))
        url = f"{settings.endpoint.rstrip('/')}/{settings.bucket}/{key}"
        refs = settings.refs()
        access_key = await self._broker.get(refs["access_key_id"])
        secret_key = await self._broker.get(refs["secret_access_key"])
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        request = AWSRequest(
            method="PUT", url=url, data=body, headers={"content-type": "application/x-ndjson"}
        )
        credentials = Credentials(access_key.reveal(), secret_key.reveal())
        S3SigV4Auth(credentials, "s3", settings.region).add_auth(request)
        await self.request("PUT", url, body, dict(request.headers.items()))
