"""The OpenAI wire format: OpenAI itself, Azure OpenAI, and every OpenAI-compatible server
(vLLM, Ollama, llama.cpp, Groq, Together, Mistral, DeepSeek, Fireworks, OpenRouter, xAI, ...).

The request body is the client's, with ``model`` replaced by the deployment's upstream model (and
dropped for Azure, whose URL names the deployment). The answer's bytes go back to the client as
they came; only ``usage`` is read out of them. Streams pass through chunk by chunk.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from gateway.config import Deployment
from gateway.errors import (
    GatewayError,
    RateLimited,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.logs import REDACTOR
from gateway.providers.base import Reply, Usage
from gateway.secrets.secret import Secret
from gateway.upstream import UpstreamPool

# Upstream statuses whose error message is about the client's own request and so is passed on
# (scrubbed). Every other upstream failure gets the gateway's own wording.
PASS_ON_STATUSES = frozenset({400, 404, 409, 413, 415, 422})
MAX_PASSED_MESSAGE = 500
MAX_SSE_LINE = 1 << 20
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError, ValueError)


class OpenAIAdapter:
    def __init__(self, deployment: Deployment, pool: UpstreamPool) -> None:
        assert deployment.base_url is not None
        self.deployment = deployment
        self._pool = pool
        self._azure = deployment.provider == "azure"
        base = deployment.base_url
        if self._azure:
            name = deployment.upstream_model or deployment.model
            query = f"?api-version={deployment.api_version}"
            self._chat_url = f"{base}/openai/deployments/{name}/chat/completions{query}"
            self._embed_url = f"{base}/openai/deployments/{name}/embeddings{query}"
        else:
            self._chat_url = f"{base}/chat/completions"
            self._embed_url = f"{base}/embeddings"
        self._upstream_model = deployment.upstream_model or deployment.model

    # -- requests ---------------------------------------------------------------------------
    def _headers(self, key: Secret | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            if self._azure:
                headers["api-key"] = key.reveal()
            else:
                headers["Authorization"] = "Bearer " + key.reveal()
        return headers

    def _payload(self, body: dict[str, Any]) -> bytes:
        out = dict(body)
        if self._azure:
            out.pop("model", None)
        else:
            out["model"] = self._upstream_model
        return json.dumps(out, separators=(",", ":")).encode()

    async def chat(self, body: dict[str, Any], key: Secret | None) -> Reply:
        return await self._post(self._chat_url, body, key)

    async def embeddings(self, body: dict[str, Any], key: Secret | None) -> Reply:
        return await self._post(self._embed_url, body, key)

    async def _post(self, url: str, body: dict[str, Any], key: Secret | None) -> Reply:
        session = self._pool.session(self.deployment)
        try:
            async with session.post(
                url, data=self._payload(body), headers=self._headers(key), allow_redirects=False
            ) as response:
                data = await response.read()
                if response.status != 200:
                    raise self._failure(response.status, data, response.headers)
        except TRANSPORT_ERRORS as exc:
            raise self._transport_failure(exc) from None
        usage = None
        try:
            usage = Usage.from_openai(json.loads(data).get("usage"))
        except (ValueError, AttributeError):
            raise UpstreamError(
                f"deployment {self.deployment.name} answered with invalid JSON"
            ) from None
        return Reply(data, usage)

    async def chat_stream(self, body: dict[str, Any], key: Secret | None) -> SSEStream:
        session = self._pool.session(self.deployment)
        try:
            response = await session.post(
                self._chat_url,
                data=self._payload(body),
                headers=self._headers(key),
                allow_redirects=False,
            )
        except TRANSPORT_ERRORS as exc:
            raise self._transport_failure(exc) from None
        if response.status != 200:
            try:
                data = await response.read()
            except TRANSPORT_ERRORS as exc:
                raise self._transport_failure(exc) from None
            finally:
                response.release()
            raise self._failure(response.status, data, response.headers)
        return SSEStream(response, self)

    async def close(self) -> None:
        """Nothing to do: the sessions belong to the UpstreamPool."""

    # -- failures ---------------------------------------------------------------------------
    def _transport_failure(self, exc: BaseException) -> BaseException:
        if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
            return exc
        name = self.deployment.name
        if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
            return UpstreamTimeout(f"deployment {name} did not answer in time")
        if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ServerDisconnectedError):
            return UpstreamUnavailable(f"deployment {name} could not be reached")
        if isinstance(exc, GatewayError):
            return exc
        return UpstreamError(f"deployment {name} failed: {type(exc).__name__}")

    def _failure(self, status: int, data: bytes, headers: Any) -> GatewayError:
        name = self.deployment.name
        if status in (401, 403):
            return UpstreamCredentialRejected(f"deployment {name} refused the gateway's credential")
        if status == 429:
            retry_after = headers.get("Retry-After", "")
            extra = {"Retry-After": retry_after} if retry_after.isdigit() else {}
            return UpstreamRateLimited(f"deployment {name} is rate limited", headers=extra)
        if status == 408 or status == 504:
            return UpstreamTimeout(f"deployment {name} timed out")
        if status == 503:
            return UpstreamUnavailable(f"deployment {name} is unavailable")
        if status >= 500:
            return UpstreamError(f"deployment {name} failed with status {status}")
        if status in PASS_ON_STATUSES:
            message, code = _error_message(data)
            text = f"deployment {name} rejected the request"
            if message:
                text += ": " + REDACTOR.scrub(message)[:MAX_PASSED_MESSAGE]
            return UpstreamRejected(text, upstream_status=status, code=code)
        return UpstreamError(f"deployment {name} answered with unexpected status {status}")


class UpstreamCredentialRejected(UpstreamError):
    """The provider said 401/403 to the gateway's own key: drop the cached key, refetch once."""

    code_hint = "upstream_auth"


class UpstreamRateLimited(RateLimited):
    """The provider's 429: another deployment may have room, so it is retryable."""

    retryable = True


def _error_message(data: bytes) -> tuple[str, str | None]:
    try:
        error = json.loads(data).get("error")
    except (ValueError, AttributeError):
        return "", None
    if isinstance(error, dict):
        message = error.get("message")
        code = error.get("code")
        return (message if isinstance(message, str) else ""), (
            code if isinstance(code, str) and len(code) <= 64 else None
        )
    return "", None


class SSEStream:
    """Passes an upstream SSE body through chunk by chunk, reading ``usage`` out of the
    ``data:`` events as they go by (without holding the stream back)."""

    def __init__(self, response: aiohttp.ClientResponse, adapter: OpenAIAdapter) -> None:
        self._response = response
        self._adapter = adapter
        self._tail = b""
        self.usage: Usage | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                self._scan(chunk)
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._adapter._transport_failure(exc) from None
        finally:
            self._response.release()

    def _scan(self, chunk: bytes) -> None:
        text = self._tail + chunk if self._tail else chunk
        cut = text.rfind(b"\n")
        if cut < 0:
            self._tail = text[-MAX_SSE_LINE:]
            return
        complete, self._tail = text[:cut], text[cut + 1 :]
        if b'"usage"' not in complete:
            return
        for line in complete.split(b"\n"):
            if line.startswith(b"data:") and b'"usage"' in line:
                try:
                    usage = json.loads(line[5:]).get("usage")
                except (ValueError, AttributeError):
                    continue
                parsed = Usage.from_openai(usage)
                if parsed is not None:
                    self.usage = parsed

    async def aclose(self) -> None:
        self._response.close()
