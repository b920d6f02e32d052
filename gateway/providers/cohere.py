"""Cohere upstream (API v2): ``/v2/chat`` (JSON and SSE), ``/v2/embed`` and ``/v2/rerank``,
reached with OpenAI-shaped calls translated both ways (``gateway.wire.cohere``); the key goes
in ``Authorization: Bearer``. Errors are Cohere's ``{"message": ...}``: 429 -> 429 with the
upstream's Retry-After, a 400 that says the prompt has too many tokens -> 400
``context_length_exceeded``, 401/403 -> refetch the key once, then 502.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gateway.config import Deployment
from gateway.errors import GatewayError, UpstreamError
from gateway.providers import http
from gateway.providers.base import Provider
from gateway.providers.pool import UpstreamPool
from gateway.secrets.secret import Secret
from gateway.values import Reply
from gateway.wire import cohere as wire

TOO_LONG_WORDING = ("too many tokens", "too long", "context length", "context window")


def failure(name: str, status: int, data: bytes, headers: Mapping[str, str]) -> GatewayError:
    try:
        document = json.loads(data)
        message = document.get("message") if isinstance(document, dict) else None
    except (ValueError, RecursionError):
        message = None
    message = message if isinstance(message, str) else ""
    return http.message_failure(name, status, message, headers, TOO_LONG_WORDING)


class CohereAdapter:
    def __init__(self, deployment: Deployment, pool: UpstreamPool) -> None:
        assert deployment.base_url is not None
        self.deployment = deployment
        self._pool = pool
        self._base = deployment.base_url

    def _upstream(self, body: dict[str, Any]) -> str:
        return self.deployment.upstream_model_for(str(body.get("model", "")))

    def _headers(self, key: Secret | None, stream: bool = False) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
        }
        if key is not None:
            headers["Authorization"] = "Bearer " + key.reveal()
        return headers

    async def _post(self, path: str, request: dict[str, Any], key: Secret | None) -> Any:
        payload = json.dumps(request, separators=(",", ":")).encode()
        data = await http.post(
            self._pool.session(self.deployment),
            self.deployment,
            self._base + path,
            payload,
            self._headers(key),
            failure,
        )
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            raise UpstreamError(
                f"deployment {self.deployment.name} answered with invalid JSON"
            ) from None

    def _invalid(self, what: str) -> UpstreamError:
        return UpstreamError(
            f"deployment {self.deployment.name} answered with something that is not {what}"
        )

    async def chat(self, body: dict[str, Any], key: Secret | None) -> Reply:
        answer = await self._post(
            "/v2/chat", wire.request_to_cohere(body, self._upstream(body)), key
        )
        try:
            completion, usage = wire.completion_from_cohere(answer, body.get("model", ""))
        except (KeyError, TypeError, AttributeError):
            raise self._invalid("a chat answer") from None
        return Reply(json.dumps(completion).encode(), usage)

    async def chat_stream(self, body: dict[str, Any], key: Secret | None) -> http.TranslatedStream:
        payload = json.dumps(wire.request_to_cohere(body, self._upstream(body))).encode()
        response = await http.open_stream(
            self._pool.session(self.deployment),
            self.deployment,
            self._base + "/v2/chat",
            payload,
            self._headers(key, stream=True),
            failure,
        )
        options = body.get("stream_options") or {}
        translator = wire.CohereStreamTranslator(
            body.get("model", ""), bool(options.get("include_usage"))
        )
        return http.TranslatedStream(
            response, self.deployment, translator, lambda e: translator.feed(e.data)
        )

    async def embeddings(self, body: dict[str, Any], key: Secret | None) -> Reply:
        answer = await self._post("/v2/embed", wire.embed_request(body, self._upstream(body)), key)
        try:
            listed, usage = wire.embeddings_from_cohere(
                answer, body.get("model", ""), body.get("encoding_format")
            )
        except (KeyError, TypeError, AttributeError):
            raise self._invalid("an embedding") from None
        return Reply(json.dumps(listed).encode(), usage)

    async def rerank(self, body: dict[str, Any], key: Secret | None) -> Reply:
        answer = await self._post(
            "/v2/rerank", wire.rerank_request(body, self._upstream(body)), key
        )
        return wire.rerank_reply(answer, body, self.deployment.name)

    async def close(self) -> None:
        """Nothing to do: the sessions belong to the UpstreamPool."""


def _adapter(deployment: Deployment, pool: UpstreamPool) -> CohereAdapter:
    return CohereAdapter(deployment, pool)


PROVIDER = Provider("cohere", _adapter)
