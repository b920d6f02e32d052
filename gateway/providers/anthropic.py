"""Anthropic upstream: the Messages API, reached two ways.

- OpenAI-shaped calls (``chat``, ``chat_stream``), translated both ways
  (``gateway.wire.anthropic``). OpenAI parameters that Anthropic has no equivalent for are
  refused with a 400 that names them, never dropped silently.
- Anthropic-shaped calls from an Anthropic client (``messages``, ``messages_stream``,
  ``count_tokens``), passed through untranslated (``gateway.wire.anthropic.native``): the answer
  and the stream come back as the upstream sent them, with usage read on the way.
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
from gateway.wire.anthropic import native
from gateway.wire.anthropic.messages import (
    FORMAT_TOOL,
    completion_from_anthropic,
    request_to_anthropic,
    structured_tool,
)
from gateway.wire.anthropic.streams import UpstreamEventTranslator

API_VERSION = "2023-06-01"


def allowed_betas(deployment: Deployment) -> frozenset[str]:
    """The ``anthropic-beta`` values this deployment forwards (its own list, or the default)."""
    if deployment.anthropic_beta is not None:
        return frozenset(deployment.anthropic_beta)
    return native.DEFAULT_BETAS


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

    def _native_headers(self, key: Secret | None, beta: bytes | None) -> dict[str, str]:
        headers = self._headers(key)
        kept, _ = native.betas(beta, allowed_betas(self.deployment))
        if kept:
            headers[native.BETA_HEADER] = ",".join(kept)
        return headers

    def _native_payload(self, raw: dict[str, Any]) -> bytes:
        upstream = self.deployment.upstream_model_for(str(raw.get("model", "")))
        return json.dumps(native.request(raw, upstream)).encode()

    async def messages(self, raw: dict[str, Any], key: Secret | None, beta: bytes | None) -> Reply:
        """An Anthropic client's Messages body, untranslated; the answer as the upstream sent it
        (a body that is not a message is the upstream's fault)."""
        data = await http.post(
            self._pool.session(self.deployment),
            self.deployment,
            self._url,
            self._native_payload(raw),
            self._native_headers(key, beta),
        )
        try:
            message = json.loads(data)
            if not isinstance(message, dict) or message.get("type") != "message":
                raise ValueError("not a message")
            usage = native.usage_of_message(message)
        except (ValueError, AttributeError, TypeError, RecursionError):
            name = self.deployment.name
            message = f"deployment {name} answered with something that is not a message"
            raise UpstreamError(message) from None
        return Reply(data, usage)

    async def messages_stream(
        self, raw: dict[str, Any], key: Secret | None, beta: bytes | None
    ) -> NativeUpstreamStream:
        response = await http.open_stream(
            self._pool.session(self.deployment),
            self.deployment,
            self._url,
            self._native_payload(raw),
            self._native_headers(key, beta),
        )
        return NativeUpstreamStream(response, self.deployment)

    async def count_tokens(
        self, raw: dict[str, Any], key: Secret | None, beta: bytes | None
    ) -> Reply:
        """``POST /v1/messages/count_tokens`` on the upstream: ``{"input_tokens": n}``."""
        data = await http.post(
            self._pool.session(self.deployment),
            self.deployment,
            self._url + "/count_tokens",
            self._native_payload(raw),
            self._native_headers(key, beta),
        )
        try:
            answer = json.loads(data)
            count = answer["input_tokens"]
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise ValueError("not a count")
        except (ValueError, KeyError, TypeError, RecursionError):
            name = self.deployment.name
            raise UpstreamError(f"deployment {name} answered count_tokens with no count") from None
        return Reply(json.dumps({"input_tokens": count}).encode(), None)

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
            completion, usage = completion_from_anthropic(
                json.loads(data), body.get("model", ""), structured_tool(body) is not None
            )
        except (ValueError, AttributeError, TypeError):
            raise UpstreamError(f"deployment {name} answered with invalid JSON") from None
        return Reply(json.dumps(completion).encode(), usage, completion)

    async def chat_stream(self, body: dict[str, Any], key: Secret | None) -> http.TranslatedStream:
        payload = self._payload(body)
        response = await http.open_stream(
            self._pool.session(self.deployment),
            self.deployment,
            self._url,
            payload,
            self._headers(key),
        )
        options = body.get("stream_options") or {}
        structured = FORMAT_TOOL if structured_tool(body) is not None else None
        translator = UpstreamEventTranslator(
            body.get("model", ""), bool(options.get("include_usage")), structured
        )
        return http.TranslatedStream(
            response, self.deployment, translator, lambda e: translator.feed(e.name, e.data)
        )

    async def embeddings(self, body: dict[str, Any], key: Secret | None) -> Reply:
        raise InvalidRequest(
            f"model {body.get('model')!r} is served by anthropic, which has no embeddings API",
            param="model",
        )

    async def close(self) -> None:
        """Nothing to do: the sessions belong to the UpstreamPool."""


class NativeUpstreamStream:
    """An Anthropic upstream's event stream, passed on to an Anthropic client as it came."""

    def __init__(self, response: aiohttp.ClientResponse, deployment: Deployment) -> None:
        self._response = response
        self._deployment = deployment
        self._monitor = native.NativeEventMonitor()

    @property
    def usage(self) -> Usage | None:
        return self._monitor.usage

    async def chunks(self) -> AsyncIterator[bytes]:
        name = self._deployment.name
        async for events in http.event_batches(self._response, self._deployment):
            try:
                out = [self._monitor.feed(event) for event in events]
            except UpstreamError as exc:
                raise UpstreamError(f"deployment {name}: {exc.message}", code=exc.code) from None
            yield b"".join(out)
        if not self._monitor.done:
            raise UpstreamTruncated(f"deployment {name} ended the stream early")
        self._response.release()

    async def aclose(self) -> None:
        self._response.close()


def _adapter(deployment: Deployment, pool: UpstreamPool) -> AnthropicAdapter:
    return AnthropicAdapter(deployment, pool)


PROVIDER = Provider("anthropic", _adapter, options=frozenset({"anthropic_beta"}))
