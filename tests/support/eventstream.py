"""The AWS event-stream framing, written for the fake Bedrock (ConverseStream answers).

botocore decodes this framing (``botocore.eventstream``) but has no encoder, and no kept library
on the locks offers one, so the fake writes it here: a 12-byte prelude (total length, headers
length, the prelude's CRC32), string headers (type 7), the payload, and the message's CRC32,
all big-endian, as the AWS event-stream encoding specifies. ``tests/providers`` decodes what
this writes with botocore's ``EventStreamBuffer``, which checks both CRCs, so the two cannot
drift apart silently. Only the fake uses it; the gateway decodes with botocore.
"""

from __future__ import annotations

import json
import struct
from binascii import crc32
from typing import Any

STRING = 7


def message(headers: dict[str, str], payload: bytes) -> bytes:
    encoded = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += struct.pack(">B", len(raw_name)) + raw_name
        encoded += struct.pack(">BH", STRING, len(raw_value)) + raw_value
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    head = prelude + struct.pack(">I", crc32(prelude))
    body = head + encoded + payload
    return body + struct.pack(">I", crc32(body))


def event(kind: str, data: Any) -> bytes:
    """A ConverseStream event message (``:message-type: event``) carrying ``data`` as JSON."""
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return message(headers, json.dumps(data).encode())


def exception(kind: str, data: Any) -> bytes:
    """A modelled exception in the stream (``:message-type: exception``)."""
    headers = {
        ":exception-type": kind,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return message(headers, json.dumps(data).encode())
