"""Anthropic upstream: the Messages API, reached with OpenAI-shaped calls translated both ways
(``gateway.wire.anthropic``). OpenAI parameters that Anthropic has no equivalent for are refused
with a 400 that names them, never dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from gateway.config import Deployment
from gateway.errors import InvalidRequest, UpstreamError, UpstreamTruncated
from gateway.providers import http
from gateway.providers.base import Provider
from gateway.providers.pool import UpstreamPool
from gateway.secrets.secret import Secret
from gateway.values import Reply, Usage
from gateway.wire.anthropic.messages import completion_from_anthropic, request_to_anthropic
from gateway.wire.anthropic.streams import UpstreamEventTranslator

API_VERSION = "2023-06-01"


class AnthropicAdapter:
    def __init__(self, deployment: Deployment, pool: UpstreamPool) -> None:
        assert deployment.base_url is not None
        self.deployment = deployment
        self._pool = pool
        self._url = f"{deployment.base_url}/v1/messages"

    def _headers(self, key: Secret | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "anthropic-version": API_VERSION}
        if key is not None:
            headers["x-api-key"] = key.reveal()
        return headers

    def _payload(self, body: dict[str, Any]) -> bytes:
        return json.dumps(
            request_to_anthropic(body, self.deployment.upstream_model_for(body.get("model", "")))
        ).encode()

    async def chat(self, body: dict[str, Any], key: Secret | None) -> Reply:
        name = self.deployment.name
        payload = self._payload(body)
        data = await http.post(
            self._pool.session(self.deployment),
            self.deployment,
            self._url,
            payload,
            self._headers(key),
        )
        try:
            completion, usage = completion_from_anthropic(json.loads(data), body.get("model", ""))
        except (ValueError, AttributeError, TypeError):
            raise UpstreamError(f"deployment {name} answered with invalid JSON") from None
        return Reply(json.dumps(completion).encode(), usage, completion)

    async def chat_stream(
        self, body: dict[str, Any], key: Secret | None
    ) -> AnthropicUpstreamStream:
        payload = self._payload(body)
        response = await http.open_stream(
            self._pool.session(self.deployment),
            self.deployment,
            self._url,
            payload,
            self._headers(key),
        )
        options = body.get("stream_options") or {}
        translator = UpstreamEventTranslator(
            body.get("model", ""), bool(options.get("include_usage"))
        )
        return AnthropicUpstreamStream(response, self.deployment, translator)

    async def embeddings(self, body: dict[str, Any], key: Secret | None) -> Reply:
        raise InvalidRequest(
            f"model {body.get('model')!r} is served by anthropic, which has no embeddings API",
            param="model",
        )

    async def close(self) -> None:
        """Nothing to do: the sessions belong to the UpstreamPool."""


class AnthropicUpstreamStream:
    """An Anthropic upstream's event stream, re-emitted as OpenAI chunks."""

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        deployment: Deployment,
        translator: UpstreamEventTranslator,
    ) -> None:
        self._response = response
        self._deployment = deployment
        self._translator = translator

    @property
    def usage(self) -> Usage | None:
        return self._translator.usage

    async def chunks(self) -> AsyncIterator[bytes]:
        name = self._deployment.name
        async for events in http.event_batches(self._response, self._deployment):
            out: list[bytes] = []
            for event in events:
                try:
                    out += self._translator.feed(event.name, event.data)
                except UpstreamError as exc:  # the translator's words, with the deployment's name
                    raise UpstreamError(
                        f"deployment {name}: {exc.message}", code=exc.code
                    ) from None
            if out:
                yield b"".join(out)
        if not self._translator.done:
            raise UpstreamTruncated(f"deployment {name} ended the stream early")
        self._response.release()

    async def aclose(self) -> None:
        self._response.close()


def _adapter(deployment: Deployment, pool: UpstreamPool) -> AnthropicAdapter:
    return AnthropicAdapter(deployment, pool)


PROVIDER = Provider("anthropic", _adapter)
