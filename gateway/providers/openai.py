"""The OpenAI wire format upstream: OpenAI itself, and every OpenAI-compatible server (vLLM,
Ollama, llama.cpp, Groq, Together, Mistral, DeepSeek, Fireworks, OpenRouter, xAI, ...).
Azure OpenAI is the same adapter with another URL and key header (``azure.py``).

The request body is the client's, with ``model`` replaced by the deployment's upstream model.
The answer's bytes go back to the client as they came; only ``usage`` is read out of them.
Streams pass through event by event: each event is framed (``gateway.wire.sse``, within the
deployment's caps) and looked at for ``usage`` and for an error, and an upstream's error event
never reaches the client as it came (it becomes the gateway's own, ``http.mid_stream_failure``).
A stream that ends without ``data: [DONE]`` is incomplete, and ends with an ``UpstreamTruncated``
error instead.
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
from gateway.values import END, Reply, Usage
from gateway.wire import cohere, openai, responses
from gateway.wire.sse import Event


class OpenAIAdapter:
    def __init__(self, deployment: Deployment, pool: UpstreamPool) -> None:
        assert deployment.base_url is not None
        self.deployment = deployment
        self._pool = pool
        self._chat_url, self._embed_url = self.urls(deployment.base_url)
        self._responses_url = self.responses_url(deployment.base_url)

    # -- what a variant of the format changes ------------------------------------------------
    def urls(self, base: str) -> tuple[str, str]:
        """The chat-completions and embeddings URLs under the pinned base URL."""
        return f"{base}/chat/completions", f"{base}/embeddings"

    def auth_headers(self, key: Secret) -> dict[str, str]:
        return {"Authorization": "Bearer " + key.reveal()}

    def upstream_body(self, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "model": self.deployment.upstream_model_for(body.get("model", ""))}

    def responses_url(self, base: str) -> str:
        """The Responses API URL under the pinned base URL (issue 14)."""
        return f"{base}/responses"

    def responses_body(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.upstream_body(body)

    # -- requests ---------------------------------------------------------------------------
    def _headers(self, key: Secret | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers.update(self.auth_headers(key))
        return headers

    def _payload(self, body: dict[str, Any]) -> bytes:
        return json.dumps(self.upstream_body(body), separators=(",", ":")).encode()

    def _json(self, body: dict[str, Any]) -> bytes:
        return json.dumps(self.responses_body(body), separators=(",", ":")).encode()

    async def chat(self, body: dict[str, Any], key: Secret | None) -> Reply:
        return await self._post(self._chat_url, body, key)

    async def embeddings(self, body: dict[str, Any], key: Secret | None) -> Reply:
        return await self._post(self._embed_url, body, key)

    async def rerank(self, body: dict[str, Any], key: Secret | None) -> Reply:
        """Cohere's rerank shape at ``{base}/rerank``, for a server that declares it
        (``rerank: true``: vLLM, Infinity, TEI and the like serve it there)."""
        if not self.deployment.rerank:
            raise InvalidRequest(
                f"model {body.get('model')!r} does not serve rerank", param="model"
            )
        base = self.deployment.base_url
        request = cohere.rerank_request(
            body, self.deployment.upstream_model_for(body.get("model", ""))
        )
        payload = json.dumps(request, separators=(",", ":")).encode()
        session = self._pool.session(self.deployment)
        data = await http.post(
            session, self.deployment, f"{base}/rerank", payload, self._headers(key)
        )
        try:
            answer = json.loads(data)
        except ValueError:
            raise UpstreamError(
                f"deployment {self.deployment.name} answered with invalid JSON"
            ) from None
        return cohere.rerank_reply(answer, body, self.deployment.name)

    async def _post(self, url: str, body: dict[str, Any], key: Secret | None) -> Reply:
        name = self.deployment.name
        session = self._pool.session(self.deployment)
        data = await http.post(
            session, self.deployment, url, self._payload(body), self._headers(key)
        )
        try:
            parsed = json.loads(data)
            usage = openai.usage_from(parsed.get("usage"))
        except (ValueError, AttributeError):
            raise UpstreamError(f"deployment {name} answered with invalid JSON") from None
        return Reply(data, usage, parsed)

    async def chat_stream(self, body: dict[str, Any], key: Secret | None) -> OpenAIUpstreamStream:
        session = self._pool.session(self.deployment)
        response = await http.open_stream(
            session, self.deployment, self._chat_url, self._payload(body), self._headers(key)
        )
        return OpenAIUpstreamStream(response, self.deployment)

    # -- the Responses API, passed through (issue 14; gateway.wire.responses) ----------------
    async def responses(self, body: dict[str, Any], key: Secret | None) -> Reply:
        name = self.deployment.name
        session = self._pool.session(self.deployment)
        data = await http.post(
            session, self.deployment, self._responses_url, self._json(body), self._headers(key)
        )
        try:
            usage = responses.usage_from(json.loads(data).get("usage"))
        except (ValueError, AttributeError, RecursionError):
            raise UpstreamError(f"deployment {name} answered with invalid JSON") from None
        return Reply(data, usage)

    async def responses_stream(
        self, body: dict[str, Any], key: Secret | None
    ) -> ResponsesUpstreamStream:
        session = self._pool.session(self.deployment)
        response = await http.open_stream(
            session, self.deployment, self._responses_url, self._json(body), self._headers(key)
        )
        return ResponsesUpstreamStream(response, self.deployment)

    async def close(self) -> None:
        """Nothing to do: the sessions belong to the UpstreamPool."""


DONE_MARKER = openai.DONE_DATA
_parse = openai.parse


class PassedStream:
    """An upstream's SSE body passed on event by event (``chunks``): each batch of events the
    upstream sent together is read (``_read``: usage, an error, the end) before it goes on, the
    response is released however the stream ends, and a stream that ends before ``_read`` saw
    its proper end is ``UpstreamTruncated``. A wire format is a ``_read`` and the words for a
    stream cut short."""

    unfinished = "ended the stream before it completed"

    def __init__(self, response: aiohttp.ClientResponse, deployment: Deployment) -> None:
        self._response = response
        self._deployment = deployment
        self.usage: Usage | None = None
        self._done = False

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for events in http.event_batches(self._response, self._deployment):
                for event in events:
                    self._read(event)
                yield b"".join(event.raw for event in events)
        finally:
            self._response.release()
        self._ended()

    def _ended(self) -> None:
        if not self._done:
            raise UpstreamTruncated(f"deployment {self._deployment.name} {self.unfinished}")

    def _read(self, event: Event) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        self._response.close()


class OpenAIUpstreamStream(PassedStream):
    """Passes an upstream SSE body through event by event, reading ``usage`` out of the events
    as they go by; an error event ends the stream with the gateway's own error, and a stream
    that ends without ``data: [DONE]`` with ``UpstreamTruncated``.

    A translator to another wire format reads the same stream as parsed chunks instead
    (``parsed``): each event's data is parsed once, here, and usage and errors are read from
    the parsed chunk, rather than framed and parsed again by the translator."""

    unfinished = "ended the stream before [DONE]"

    def _read(self, event: Event) -> None:
        data = event.data
        if data == DONE_MARKER:
            self._done = True
            return
        if event.name == b"error" or b'"error"' in data:
            try:
                payload = json.loads(data)
            except (ValueError, RecursionError):
                payload = None
            error = openai.stream_error(payload)
            if event.name == b"error" or error is not None:
                raise http.mid_stream_failure(self._deployment.name, error)
        if b'"usage"' in data:
            try:
                usage = openai.usage_from(json.loads(data).get("usage"))
            except (ValueError, AttributeError, RecursionError):
                return
            if usage is not None:
                self.usage = usage

    def parsed(self) -> AsyncIterator[list[Any]]:
        """The stream as its parsed chunks (``gateway.values.parsed_chunks``)."""
        return self._parsed()

    async def _parsed(self) -> AsyncIterator[list[Any]]:
        try:
            async for events in http.event_batches(self._response, self._deployment):
                batch = [
                    self._item(event) for event in events if event.data or event.name == b"error"
                ]
                if batch:
                    yield batch
        finally:
            self._response.release()
        self._ended()

    def _item(self, event: Event) -> Any:
        """``_read`` on a parsed event: the same errors, usage and end, and the parsed chunk."""
        data = event.data
        if data == DONE_MARKER:
            self._done = True
            return END
        chunk = _parse(data)
        if type(chunk) is not dict:  # (openai.stream_error: only a dict reports an error)
            if event.name == b"error":
                raise http.mid_stream_failure(self._deployment.name, None)
            return chunk
        error = chunk.get("error")
        if error is not None or event.name == b"error":
            raise http.mid_stream_failure(self._deployment.name, error)
        if "usage" in chunk:
            usage = openai.usage_from(chunk["usage"])
            if usage is not None:
                self.usage = usage
        return chunk


# The events that end a Responses stream; one of them must come before the stream ends.
RESPONSES_END = frozenset({b"response.completed", b"response.incomplete", b"response.failed"})


class ResponsesUpstreamStream(PassedStream):
    """An OpenAI upstream's Responses event stream, passed through event by event: ``usage`` is
    read from the final ``response.*`` event; an ``error`` event (or ``response.failed``) ends
    the stream with the gateway's own error, and a stream without a final event with
    ``UpstreamTruncated``."""

    def __init__(self, response: aiohttp.ClientResponse, deployment: Deployment) -> None:
        super().__init__(response, deployment)
        self.response_id: str | None = None  # the upstream's id, from response.created

    def _created(self, data: bytes) -> None:
        try:
            found = json.loads(data)["response"]["id"]
        except (ValueError, KeyError, TypeError, RecursionError):
            return
        if isinstance(found, str):
            self.response_id = found

    def _read(self, event: Event) -> None:
        kind = event.name
        if kind == b"error" or kind == b"response.failed":
            try:
                payload = json.loads(event.data)
            except (ValueError, RecursionError):
                payload = None
            error = payload.get("error") if isinstance(payload, dict) else None
            if kind == b"response.failed" and isinstance(payload, dict):
                failed = payload.get("response")
                error = failed.get("error") if isinstance(failed, dict) else None
            raise http.mid_stream_failure(self._deployment.name, error or payload)
        if kind == b"response.created":
            self._created(event.data)
        if kind in RESPONSES_END:
            self._done = True
            try:
                final = json.loads(event.data).get("response")
                usage = responses.usage_from(final.get("usage"))
            except (ValueError, AttributeError, RecursionError):
                return
            if usage is not None:
                self.usage = usage


def _adapter(deployment: Deployment, pool: UpstreamPool) -> OpenAIAdapter:
    return OpenAIAdapter(deployment, pool)


PROVIDER = Provider("openai", _adapter)
# vLLM, Ollama, llama.cpp and the like often run without a key: a credential is optional.
COMPATIBLE = Provider(
    "openai_compatible", _adapter, needs_credential=False, options=frozenset({"rerank"})
)
