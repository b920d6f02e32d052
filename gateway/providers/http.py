"""What every HTTP provider adapter shares: sending through the deployment's pooled session,
reading what comes back within the deployment's caps, and turning transport failures and
upstream statuses into GatewayErrors.

The mapping is the same for every wire format: 401/403 means the provider refused the gateway's
own credential (drop it, refetch once); 429 and 5xx are worth another deployment; the statuses in
``PASS_ON_STATUSES`` are about the client's own request, so the provider's message is passed on,
scrubbed and shortened; anything else gets the gateway's own wording. An upstream's error code
(Anthropic: its error type) is passed on only when it is one of the codes the formats document
(``known_code``): a code is a string the upstream chose, so any other becomes the gateway's own,
and it is never a metric label or a spend row's status either.

Nothing an upstream sends is read whole without a bound: a complete answer is read up to the
deployment's ``max_response_bytes`` (refused at once when its Content-Length says more), an
error body up to ``MAX_ERROR_BODY``, a stream up to ``max_stream_bytes`` in all, each of its
events up to ``max_event_bytes`` (``gateway.wire.sse``). Past a cap the call fails with
``UpstreamTooLarge`` and the connection is closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

import aiohttp
from yarl import URL

from gateway import tracing
from gateway.config import Deployment
from gateway.errors import (
    GatewayError,
    UpstreamCredentialRejected,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamTooLarge,
    UpstreamTruncated,
    UpstreamUnavailable,
)
from gateway.logs import REDACTOR
from gateway.values import Usage
from gateway.wire import openai
from gateway.wire.anthropic import vocabulary as anthropic
from gateway.wire.sse import Event, EventReader, EventTooLarge

log = logging.getLogger("sealgate.upstream")

PASS_ON_STATUSES = frozenset({400, 404, 409, 413, 415, 422})
MAX_PASSED_MESSAGE = 500
MAX_ERROR_BODY = 64 * 1024  # of an error answer, only the message is read
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError, ValueError)
KNOWN_CODES = openai.ERROR_CODES | anthropic.UPSTREAM_ERROR_TYPES


def known_code(value: Any) -> str | None:
    """An upstream's error code, if it is one the wire formats document; None otherwise."""
    return value if isinstance(value, str) and value in KNOWN_CODES else None


def transport_failure(name: str, exc: BaseException) -> BaseException:
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit | GatewayError):
        return exc
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"deployment {name} did not answer in time")
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ServerDisconnectedError):
        return UpstreamUnavailable(f"deployment {name} could not be reached")
    return UpstreamError(f"deployment {name} failed: {type(exc).__name__}")


def upstream_failure(
    name: str, status: int, data: bytes, headers: Mapping[str, str]
) -> GatewayError:
    if status in (401, 403):
        return UpstreamCredentialRejected(f"deployment {name} refused the gateway's credential")
    if status == 429:
        retry_after = headers.get("Retry-After", "")
        extra = {"Retry-After": retry_after} if retry_after.isdigit() else {}
        return UpstreamRateLimited(f"deployment {name} is rate limited", headers=extra)
    if status in (408, 504):
        return UpstreamTimeout(f"deployment {name} timed out")
    if status in (503, 529):  # 529: Anthropic's "overloaded"
        return UpstreamUnavailable(f"deployment {name} is unavailable")
    if status >= 500:
        return UpstreamError(f"deployment {name} failed with status {status}")
    if status in PASS_ON_STATUSES:
        message, code = error_message(data)
        text = f"deployment {name} rejected the request"
        if message:
            text += ": " + REDACTOR.scrub(message)[:MAX_PASSED_MESSAGE]
        return UpstreamRejected(text, upstream_status=status, code=code)
    return UpstreamError(f"deployment {name} answered with unexpected status {status}")


def message_failure(
    name: str,
    status: int,
    message: str,
    headers: Mapping[str, str],
    too_long: tuple[str, ...],
) -> GatewayError:
    """A provider's error with a plain ``message`` (Bedrock, Cohere): a 400 whose message has
    one of the ``too_long`` phrasings is ``context_length_exceeded`` (routing falls back on
    it); anything else as ``upstream_failure`` reads it."""
    if status == 400 and any(words in message.lower() for words in too_long):
        text = REDACTOR.scrub(message)[:MAX_PASSED_MESSAGE]
        return UpstreamRejected(
            f"deployment {name} rejected the request: {text}",
            upstream_status=400,
            code="context_length_exceeded",
        )
    return upstream_failure(
        name, status, json.dumps({"error": {"message": message}}).encode(), headers
    )


# How an upstream's non-200 answer becomes a GatewayError: ``upstream_failure`` unless the
# provider maps its own error shape (Bedrock, Cohere).
Failure = Callable[[str, int, bytes, Mapping[str, str]], GatewayError]


def error_message(data: bytes | Any) -> tuple[str, str | None]:
    """The message and the known code of an OpenAI- or Anthropic-shaped error (both use
    ``{"error": {"message": ..., "code"|"type": ...}}``), from its bytes or its parsed JSON."""
    try:
        document = json.loads(data) if isinstance(data, bytes | bytearray) else data
        error = document.get("error")
    except (ValueError, AttributeError, RecursionError):
        return "", None
    if not isinstance(error, dict):
        return "", None
    message = error.get("message")
    code = known_code(error.get("code")) or known_code(error.get("type"))
    return (message if isinstance(message, str) else ""), code


def too_large(name: str, what: str, cap: int, code: str | None = None) -> UpstreamTooLarge:
    return UpstreamTooLarge(
        f"deployment {name} sent {what} larger than the gateway's limit of {cap} bytes",
        code=code,
    )


async def read_capped(response: aiohttp.ClientResponse, name: str, cap: int) -> bytes:
    """The whole body, or UpstreamTooLarge as soon as it is known to pass ``cap``."""
    if response.content_length is not None and response.content_length > cap:
        raise too_large(name, "an answer", cap)
    pieces, size = [], 0
    async for piece in response.content.iter_any():
        size += len(piece)
        if size > cap:
            raise too_large(name, "an answer", cap)
        pieces.append(piece)
    return b"".join(pieces)


async def read_prefix(response: aiohttp.ClientResponse, cap: int) -> bytes:
    """At most ``cap`` bytes of the body (an error answer: only its message matters)."""
    pieces, size = [], 0
    async for piece in response.content.iter_any():
        pieces.append(piece[: cap - size])
        size += len(pieces[-1])
        if size >= cap:
            break
    return b"".join(pieces)


async def post(
    session: aiohttp.ClientSession,
    deployment: Deployment,
    url: str | URL,
    payload: bytes,
    headers: dict[str, str],
    failure: Failure = upstream_failure,
) -> bytes:
    """POST and read the whole answer (within ``max_response_bytes``); a status other than
    200 becomes a GatewayError."""
    name = deployment.name
    if trace_context := tracing.outbound():  # observability (issue 17): W3C trace context
        headers = headers | trace_context
    try:
        async with session.post(url, data=payload, headers=headers, allow_redirects=False) as r:
            try:
                if r.status != 200:
                    raise failure(name, r.status, await read_prefix(r, MAX_ERROR_BODY), r.headers)
                return await read_capped(r, name, deployment.max_response_bytes)
            except GatewayError:
                r.close()  # what is left unread is not worth the connection
                raise
    except TRANSPORT_ERRORS as exc:
        raise transport_failure(name, exc) from None


async def open_stream(
    session: aiohttp.ClientSession,
    deployment: Deployment,
    url: str | URL,
    payload: bytes,
    headers: dict[str, str],
    failure: Failure = upstream_failure,
) -> aiohttp.ClientResponse:
    """POST and return the response once its status is known to be 200 (body unread)."""
    name = deployment.name
    if trace_context := tracing.outbound():  # observability (issue 17): W3C trace context
        headers = headers | trace_context
    try:
        response = await session.post(url, data=payload, headers=headers, allow_redirects=False)
    except TRANSPORT_ERRORS as exc:
        raise transport_failure(name, exc) from None
    if response.status != 200:
        try:
            data = await read_prefix(response, MAX_ERROR_BODY)
        except TRANSPORT_ERRORS as exc:
            raise transport_failure(name, exc) from None
        finally:
            response.close()
        raise failure(name, response.status, data, response.headers)
    return response


async def event_batches(
    response: aiohttp.ClientResponse, deployment: Deployment
) -> AsyncIterator[list[Event]]:
    """The events of an SSE body, a batch for each piece the upstream sent (so that what came
    together goes on together), within the deployment's stream and event caps. The stream's
    last event comes even when the upstream ended it without its blank line."""
    name = deployment.name
    reader = EventReader(deployment.max_event_bytes)
    cap, size = deployment.max_stream_bytes, 0
    try:
        async for piece in response.content.iter_any():
            size += len(piece)
            if size > cap:
                raise too_large(name, "a stream", cap)
            events = reader.feed(piece)
            if events:
                yield events
        last = reader.finish()
        if last:
            yield last
    except EventTooLarge:
        limit = deployment.max_event_bytes
        raise too_large(name, "a stream event", limit, "upstream_event_too_large") from None
    except TRANSPORT_ERRORS as exc:
        raise transport_failure(name, exc) from None


async def sse_events(
    response: aiohttp.ClientResponse, deployment: Deployment
) -> AsyncIterator[Event]:
    """The events of an SSE body one by one (``event_batches``, flattened)."""
    async for batch in event_batches(response, deployment):
        for event in batch:
            yield event


def mid_stream_failure(name: str, error: Any) -> UpstreamError:
    """An error event an upstream sent in the middle of a stream, in the gateway's words: the
    upstream's message goes to the log (scrubbed), only a known code goes on."""
    message, code = error_message({"error": error})
    log.warning(
        "upstream reported an error mid-stream",
        extra={"sg_deployment": name, "sg_upstream_message": REDACTOR.scrub(message)[:500]},
    )
    return UpstreamError(f"deployment {name} reported an error mid-stream", code=code)


class EventTranslator(Protocol):
    """What a provider's stream translator offers (gateway/wire/): the usage seen so far,
    whether the upstream's stream reached its proper end, and ``parsed``: set, it writes each
    chunk as its parse instead of its bytes (``wire.openai.ChunkWriter``)."""

    @property
    def usage(self) -> Usage | None: ...

    @property
    def done(self) -> bool: ...

    parsed: bool


def as_batch(chunks: list[Any]) -> list[Any]:
    """A batch of parsed chunks as a stream's ``parsed()`` hands it over: as written."""
    return chunks


class TranslatedStream:
    """An upstream's SSE body, each event turned into OpenAI chunks by ``feed`` (Anthropic,
    Gemini and Vertex, Cohere): a translator's error carries the deployment's name, a stream
    that ends before the translator saw its end is ``UpstreamTruncated``, and ``end`` gives
    what goes out after the last event (the final usage chunk, for a translator that holds
    it back).

    A translator to another wire format reads the same chunks parsed (``parsed``,
    ``gateway.values.parsed_chunks``): the translator writes each chunk as the dict its bytes
    would parse to, rather than bytes the next translator parses again."""

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        deployment: Deployment,
        translator: EventTranslator,
        feed: Callable[[Event], list[Any]],
        end: Callable[[], list[Any]] | None = None,
    ) -> None:
        self._response = response
        self._deployment = deployment
        self._translator = translator
        self._feed = feed
        self._end = end

    @property
    def usage(self) -> Usage | None:
        return self._translator.usage

    def chunks(self) -> AsyncIterator[bytes]:
        return self._translated(b"".join)

    def parsed(self) -> AsyncIterator[list[Any]]:
        """The stream as its parsed chunks (``gateway.values.parsed_chunks``)."""
        self._translator.parsed = True
        return self._translated(as_batch)

    async def _translated(self, batch: Callable[[list[Any]], Any]) -> AsyncIterator[Any]:
        """Each upstream batch's chunks as one piece: ``batch`` of what the translator wrote."""
        name = self._deployment.name
        try:
            async for events in event_batches(self._response, self._deployment):
                out: list[Any] = []
                for event in events:
                    try:
                        out += self._feed(event)
                    except UpstreamError as exc:  # the translator's words, with the name
                        raise UpstreamError(
                            f"deployment {name}: {exc.message}", code=exc.code
                        ) from None
                if out:
                    yield batch(out)
            if not self._translator.done:
                raise UpstreamTruncated(f"deployment {name} ended the stream early")
            if self._end is not None:
                yield batch(self._end())
        finally:
            self._response.release()

    async def aclose(self) -> None:
        self._response.close()
