"""What one client connection may hold, bounded where the bytes arrive: uvicorn's httptools
protocol with limits it does not have of its own.

uvicorn's httptools parser takes a request head of any size (httptools joins a header line
piece by piece until it ends, so one 512 MiB line costs a gigabyte and the event loop with it),
any number of headers, and waits without end for a head or a body that comes a byte at a time,
or for a first byte that never comes. ``GuardedProtocol`` feeds the parser no more than
``max_header_bytes`` of a request's head (request line and headers) and counts its header lines,
answering 431 past either; answers 408 to a head not complete within ``header_timeout_seconds``
of its first byte, or a body not complete within ``body_timeout_seconds`` of the head; closes a
connection that sends nothing for ``idle_timeout_seconds`` (before its first request as after a
response); and answers 503 to a connection beyond ``max_connections``. Each answer closes the
connection and is the gateway's own error body (``gateway.errors``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway.config import Server
from gateway.errors import GatewayError, HeadersTooLarge, RequestTimeout, TooManyConnections


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int
    max_headers: int
    header_timeout_seconds: float
    body_timeout_seconds: float
    idle_timeout_seconds: float
    max_connections: int

    @classmethod
    def of(cls, server: Server) -> ConnectionLimits:
        return cls(
            server.max_header_bytes,
            server.max_headers,
            server.header_timeout_seconds,
            server.body_timeout_seconds,
            server.idle_timeout_seconds,
            server.max_connections,
        )


def raw_answer(exc: GatewayError) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection, with the error's OpenAI body."""
    body = json.dumps(exc.body()).encode()
    head = [
        STATUS_LINE[exc.http_status],
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n",
    ]
    head += [f"{k.lower()}: {v}\r\n".encode("latin-1") for k, v in exc.headers.items()]
    return b"".join([*head, b"\r\n", body])


def protocol_for(limits: ConnectionLimits) -> type[GuardedProtocol]:
    """The protocol class uvicorn is given (``http=``), with these limits."""
    return type("GuardedProtocol", (GuardedProtocol,), {"limits": limits})


class GuardedProtocol(HttpToolsProtocol):
    limits: ClassVar[ConnectionLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn's keep-alive timer closes a connection idle after a response.
        self.timeout_keep_alive = self.limits.idle_timeout_seconds  # type: ignore[assignment]
        self._in_head = True  # reading a request line and headers, or waiting for one
        self._head_bytes = 0
        self._header_lines = 0
        self._over: GatewayError | None = None  # a limit the head passed
        self._timer: asyncio.TimerHandle | None = None
        self._timing: str | None = None  # "idle", "head" or "body"
        self._answered = False

    # -- the connection ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            limit = self.limits.max_connections
            busy = TooManyConnections(
                f"the gateway has {limit} connections open; retry shortly",
                headers={"Retry-After": "1"},
            )
            self._answer(busy)
            return
        self._arm("idle", self.limits.idle_timeout_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser, but never more than the head limit of a request's head."""
        if self._answered:
            return
        self._unset_keepalive_if_required()
        if self._in_head and self._timing != "head":
            self._arm("head", self.limits.header_timeout_seconds)
        view = memoryview(data)
        while view:
            if self._in_head:
                room = self.limits.max_header_bytes - self._head_bytes
                piece, view = view[: room + 1], view[room + 1 :]
                self._head_bytes += len(piece)
            else:
                piece, view = view, view[:0]
            if not self._feed(piece):
                return
            limit = self.limits.max_header_bytes
            if self._over is None and self._in_head and self._head_bytes > limit:
                message = f"the request line and headers are larger than {limit} bytes"
                self._over = HeadersTooLarge(message)
            if self._over is not None:
                self._answer(self._over)
                return

    def _feed(self, piece: memoryview) -> bool:
        """One parser step, errors handled as uvicorn does; False when the connection is done."""
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        except httptools.HttpParserError:
            if self._over is not None:
                return True  # the limit is the answer
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            self._answered = True
            return False
        return True

    # -- parser callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._header_lines = 0
        if self._timing != "head":
            self._arm("head", self.limits.header_timeout_seconds)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_lines += 1
        if self._header_lines <= self.limits.max_headers:
            super().on_header(name, value)
        elif self._over is None:
            limit = self.limits.max_headers
            message = f"the request has more than {limit} headers"
            self._over = HeadersTooLarge(message, code="too_many_headers")

    def on_headers_complete(self) -> None:
        if self._over is not None:
            return  # answered once the parser returns; the route never runs
        self._in_head = False
        self._arm("body", self.limits.body_timeout_seconds)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._over is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._over is not None:
            return
        self._disarm()
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()

    # -- timers -----------------------------------------------------------------------------
    def _arm(self, timing: str, seconds: float) -> None:
        self._disarm()
        self._timing = timing
        self._timer = self.loop.call_later(seconds, self._expired, timing)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timing = None

    def _expired(self, timing: str) -> None:
        self._timer = self._timing = None
        if timing == "idle":
            if not self.transport.is_closing():
                self.transport.close()
            return
        if timing == "head":
            seconds, what = self.limits.header_timeout_seconds, "headers"
        else:
            seconds, what = self.limits.body_timeout_seconds, "body"
        self._answer(RequestTimeout(f"the request {what} did not arrive within {seconds:g} s"))

    # -- answering --------------------------------------------------------------------------
    def _answer(self, exc: GatewayError) -> None:
        """Answer ``exc`` (unless the route's answer already began) and close the connection;
        a route still running sees a client that went away."""
        self._answered = True
        self._disarm()
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or not cycle.response_started:
            self.transport.write(raw_answer(exc))
        if cycle is not None:
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()
