"""What every HTTP provider adapter shares: sending through the deployment's pooled session,
and turning transport failures and upstream statuses into GatewayErrors.

The mapping is the same for every wire format: 401/403 means the provider refused the gateway's
own credential (drop it, refetch once); 429 and 5xx are worth another deployment; the statuses in
``PASS_ON_STATUSES`` are about the client's own request, so the provider's message is passed on,
scrubbed and shortened; anything else gets the gateway's own wording.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping

import aiohttp

from gateway.errors import (
    GatewayError,
    UpstreamCredentialRejected,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.logs import REDACTOR

PASS_ON_STATUSES = frozenset({400, 404, 409, 413, 415, 422})
MAX_PASSED_MESSAGE = 500
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError, ValueError)


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


def error_message(data: bytes) -> tuple[str, str | None]:
    """The message and code of an OpenAI- or Anthropic-shaped error body (both use
    ``{"error": {"message": ..., "code"|"type": ...}}``)."""
    try:
        error = json.loads(data).get("error")
    except (ValueError, AttributeError):
        return "", None
    if not isinstance(error, dict):
        return "", None
    message = error.get("message")
    code = error.get("code", error.get("type"))
    return (message if isinstance(message, str) else ""), (
        code if isinstance(code, str) and len(code) <= 64 else None
    )


async def post(
    session: aiohttp.ClientSession, name: str, url: str, payload: bytes, headers: dict[str, str]
) -> bytes:
    """POST and read the whole answer; a non-200 status becomes a GatewayError."""
    try:
        async with session.post(url, data=payload, headers=headers, allow_redirects=False) as r:
            data = await r.read()
            if r.status != 200:
                raise upstream_failure(name, r.status, data, r.headers)
            return data
    except TRANSPORT_ERRORS as exc:
        raise transport_failure(name, exc) from None


async def open_stream(
    session: aiohttp.ClientSession, name: str, url: str, payload: bytes, headers: dict[str, str]
) -> aiohttp.ClientResponse:
    """POST and return the response once its status is known to be 200 (body unread)."""
    try:
        response = await session.post(url, data=payload, headers=headers, allow_redirects=False)
    except TRANSPORT_ERRORS as exc:
        raise transport_failure(name, exc) from None
    if response.status != 200:
        try:
            data = await response.read()
        except TRANSPORT_ERRORS as exc:
            raise transport_failure(name, exc) from None
        finally:
            response.release()
        raise upstream_failure(name, response.status, data, response.headers)
    return response


async def sse_events(
    response: aiohttp.ClientResponse, name: str
) -> AsyncIterator[tuple[bytes, bytes]]:
    """The (event, data) pairs of an SSE body, as they arrive."""
    buffer = b""
    try:
        async for chunk in response.content.iter_any():
            buffer += chunk
            while True:
                cut = buffer.find(b"\n\n")
                if cut < 0:
                    break
                raw, buffer = buffer[:cut], buffer[cut + 2 :]
                event, data = b"", []
                for line in raw.replace(b"\r\n", b"\n").split(b"\n"):
                    if line.startswith(b"event:"):
                        event = line[6:].strip()
                    elif line.startswith(b"data:"):
                        data.append(line[5:].strip())
                if data or event:
                    yield event, b"\n".join(data)
    except TRANSPORT_ERRORS as exc:
        raise transport_failure(name, exc) from None
