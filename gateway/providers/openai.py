"""The OpenAI wire format upstream: OpenAI itself, and every OpenAI-compatible server (vLLM,
Ollama, llama.cpp, Groq, Together, Mistral, DeepSeek, Fireworks, OpenRouter, xAI, ...).
Azure OpenAI is the same adapter with another URL and key header (``azure.py``).

The request body is the client's, with ``model`` replaced by the deployment's upstream model.
The answer's bytes go back to the client as they came; only ``usage`` is read out of them.
Streams pass through chunk by chunk; one that ends without ``data: [DONE]`` is incomplete, and
ends with an ``UpstreamTruncated`` error instead.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from gateway.config import Deployment
from gateway.errors import UpstreamError, UpstreamTruncated
from gateway.providers import http
from gateway.providers.base import Provider
from gateway.providers.pool import UpstreamPool
from gateway.secrets.secret import Secret
from gateway.values import Reply, Usage
from gateway.wire import openai


class OpenAIAdapter:
    def __init__(self, deployment: Deployment, pool: UpstreamPool) -> None:
        assert deployment.base_url is not None
        self.deployment = deployment
        self._pool = pool
        self._chat_url, self._embed_url = self.urls(deployment.base_url)
        self._upstream_model = deployment.upstream_model or deployment.model

    # -- what a variant of the format changes ------------------------------------------------
    def urls(self, base: str) -> tuple[str, str]:
        """The chat-completions and embeddings URLs under the pinned base URL."""
        return f"{base}/chat/completions", f"{base}/embeddings"

    def auth_headers(self, key: Secret) -> dict[str, str]:
        return {"Authorization": "Bearer " + key.reveal()}

    def upstream_body(self, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "model": self._upstream_model}

    # -- requests ---------------------------------------------------------------------------
    def _headers(self, key: Secret | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers.update(self.auth_headers(key))
        return headers

    def _payload(self, body: dict[str, Any]) -> bytes:
        return json.dumps(self.upstream_body(body), separators=(",", ":")).encode()

    async def chat(self, body: dict[str, Any], key: Secret | None) -> Reply:
        return await self._post(self._chat_url, body, key)

    async def embeddings(self, body: dict[str, Any], key: Secret | None) -> Reply:
        return await self._post(self._embed_url, body, key)

    async def _post(self, url: str, body: dict[str, Any], key: Secret | None) -> Reply:
        name = self.deployment.name
        session = self._pool.session(self.deployment)
        data = await http.post(session, name, url, self._payload(body), self._headers(key))
        try:
            usage = openai.usage_from(json.loads(data).get("usage"))
        except (ValueError, AttributeError):
            raise UpstreamError(f"deployment {name} answered with invalid JSON") from None
        return Reply(data, usage)

    async def chat_stream(self, body: dict[str, Any], key: Secret | None) -> OpenAIUpstreamStream:
        session = self._pool.session(self.deployment)
        response = await http.open_stream(
            session, self.deployment.name, self._chat_url, self._payload(body), self._headers(key)
        )
        return OpenAIUpstreamStream(response, self.deployment.name)

    async def close(self) -> None:
        """Nothing to do: the sessions belong to the UpstreamPool."""


DONE_MARKER = b"[DONE]"
TAIL_BYTES = 32  # enough of the stream's end to see its last data line


class OpenAIUpstreamStream:
    """Passes an upstream SSE body through chunk by chunk, reading ``usage`` out of the
    ``data:`` events as they go by (without holding the stream back), and keeping the last few
    bytes to see whether the stream ended with ``data: [DONE]``."""

    def __init__(self, response: aiohttp.ClientResponse, name: str) -> None:
        self._response = response
        self._name = name
        self._scanner = openai.UsageScanner()
        self._tail = b""

    @property
    def usage(self) -> Usage | None:
        return self._scanner.usage

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                self._scanner.scan(chunk)
                self._tail = (self._tail + chunk[-TAIL_BYTES:])[-TAIL_BYTES:]
                yield chunk
        except http.TRANSPORT_ERRORS as exc:
            raise http.transport_failure(self._name, exc) from None
        finally:
            self._response.release()
        # Any JSON event ends in "}"; only the end marker ends in "[DONE]".
        if not self._tail.rstrip().endswith(DONE_MARKER):
            raise UpstreamTruncated(f"deployment {self._name} ended the stream before [DONE]")

    async def aclose(self) -> None:
        self._response.close()


def _adapter(deployment: Deployment, pool: UpstreamPool) -> OpenAIAdapter:
    return OpenAIAdapter(deployment, pool)


PROVIDER = Provider("openai", _adapter)
# vLLM, Ollama, llama.cpp and the like often run without a key: a credential is optional.
COMPATIBLE = Provider("openai_compatible", _adapter, needs_credential=False)
