"""The OpenAI wire format: OpenAI itself, Azure OpenAI, and every OpenAI-compatible server
(vLLM, Ollama, llama.cpp, Groq, Together, Mistral, DeepSeek, Fireworks, OpenRouter, xAI, ...).

The request body is the client's, with ``model`` replaced by the deployment's upstream model (and
dropped for Azure, whose URL names the deployment). The answer's bytes go back to the client as
they came; only ``usage`` is read out of them. Streams pass through chunk by chunk.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from gateway.config import Deployment
from gateway.errors import UpstreamError
from gateway.providers import http
from gateway.providers.base import Reply, Usage
from gateway.providers.pool import UpstreamPool
from gateway.secrets.secret import Secret

MAX_SSE_LINE = 1 << 20


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
        name = self.deployment.name
        session = self._pool.session(self.deployment)
        data = await http.post(session, name, url, self._payload(body), self._headers(key))
        try:
            usage = Usage.from_openai(json.loads(data).get("usage"))
        except (ValueError, AttributeError):
            raise UpstreamError(f"deployment {name} answered with invalid JSON") from None
        return Reply(data, usage)

    async def chat_stream(self, body: dict[str, Any], key: Secret | None) -> SSEStream:
        session = self._pool.session(self.deployment)
        response = await http.open_stream(
            session, self.deployment.name, self._chat_url, self._payload(body), self._headers(key)
        )
        return SSEStream(response, self.deployment.name)

    async def close(self) -> None:
        """Nothing to do: the sessions belong to the UpstreamPool."""


class SSEStream:
    """Passes an upstream SSE body through chunk by chunk, reading ``usage`` out of the
    ``data:`` events as they go by (without holding the stream back)."""

    def __init__(self, response: aiohttp.ClientResponse, name: str) -> None:
        self._response = response
        self._name = name
        self._tail = b""
        self.usage: Usage | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                self._scan(chunk)
                yield chunk
        except http.TRANSPORT_ERRORS as exc:
            raise http.transport_failure(self._name, exc) from None
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
