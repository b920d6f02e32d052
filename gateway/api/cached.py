"""The response cache on the inference routes: a hit answered from the cache (JSON, or a
stream replayed as the SSE it was), a miss recorded on its way out; ``x-sealgate-cache: hit`` or
``miss`` on every answer of a request the cache was asked about.

A hit is settled as a ``cached`` request: it counts against the caller's requests per minute,
and costs nothing and uses none of an upstream's tokens (no deployment served it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.types import Receive, Send

from gateway.api.asgi import JSON_HEADERS, send_body, send_stream
from gateway.cache.responses import Hit, Kind, Lookup, ResponseCache, Route
from gateway.governance.admission import Admission
from gateway.store.keys import KeyRecord
from gateway.values import Stream, Usage

HEADER = b"x-sealgate-cache"
HIT = [(HEADER, b"hit")]
MISS = [(HEADER, b"miss")]
EVENT_END = b"\n\n"


def lookup(
    cache: ResponseCache | None,
    route: Route,
    record: KeyRecord,
    body: Mapping[str, Any],
    headers: Mapping[bytes, bytes],
) -> Lookup | None:
    """The request's place in the cache, or None when there is no cache."""
    return cache.lookup(route, record, body, headers) if cache is not None else None


async def find(lookup: Lookup | None) -> Hit | None:
    """The cached answer of the request, read before admission (nothing counted yet)."""
    return await lookup.find() if lookup is not None else None


async def answered(
    lookup: Lookup | None, hit: Hit | None, receive: Receive, send: Send, admission: Admission
) -> bool:
    """Once the request was admitted: count the lookup, and answer from the cache when it held
    the request's answer (``hit``, from ``find``); True if it did."""
    if lookup is None:
        return False
    lookup.count(hit)
    if hit is None:
        return False
    await admission.finish(None, None, "cached")
    if hit.kind == "body":
        await send_body(send, 200, hit.data, JSON_HEADERS + HIT)
        return True

    async def settled(_: Stream, outcome: str) -> None:
        return None

    await send_stream(receive, send, Replay(hit.data), settled, headers=HIT)
    return True


async def keep(lookup: Lookup | None, kind: Kind, data: bytes) -> None:
    if lookup is not None:
        await lookup.put(kind, data)


class Replay:
    """A cached stream sent again event by event, byte for byte as it was first sent."""

    usage: Usage | None = None

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def chunks(self) -> AsyncIterator[bytes]:
        start = 0
        while start < len(self._data):
            end = self._data.find(EVENT_END, start)
            end = len(self._data) if end < 0 else end + len(EVENT_END)
            yield self._data[start:end]
            start = end

    async def aclose(self) -> None:
        return None


class Recording:
    """A stream passed on as it is, keeping a copy of what went out (up to the cache's
    ``max_entry_bytes``: past that nothing is kept) to be cached once it ended cleanly."""

    def __init__(self, inner: Stream, lookup: Lookup) -> None:
        self._inner = inner
        self._lookup = lookup
        self._limit = lookup.cache.max_entry_bytes
        self._pieces: list[bytes] = []
        self._size = 0
        self.complete = False

    @property
    def usage(self) -> Usage | None:
        return self._inner.usage

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner.chunks():
            self._size += len(chunk)
            if self._size <= self._limit:
                self._pieces.append(chunk)
            yield chunk
        self.complete = self._size <= self._limit

    async def keep(self) -> None:
        """Cache the stream, if it ran to its end within the size cap."""
        if self.complete:
            await self._lookup.put("stream", b"".join(self._pieces))

    async def aclose(self) -> None:
        await self._inner.aclose()
