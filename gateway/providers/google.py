"""Google upstreams: the Gemini API (``gemini``) and Vertex AI (``vertex_ai``), both speaking
generateContent (``gateway.wire.gemini``), reached with OpenAI-shaped calls translated both ways.

    gemini     base_url https://generativelanguage.googleapis.com/v1beta
               the key goes in the ``x-goog-api-key`` header, never in the URL's query string
    vertex_ai  base_url https://<region>-aiplatform.googleapis.com/v1/projects/<project>/locations/<region>
               the credential is a Google credential JSON (service-account key or workload
               identity federation); google-auth turns it into a short-lived OAuth token
               (``google_token``), sent as ``Authorization: Bearer``

Chat goes to ``<base>/models/<m>:generateContent`` (Vertex: ``<base>/publishers/google/models/
<m>:...``), streams to ``:streamGenerateContent?alt=sse``; embeddings to ``:batchEmbedContents``
(Gemini) or ``:predict`` (Vertex).

Errors (Google's ``{"error": {"code", "message", "status", "details"}}``) are mapped here:
429 ``RESOURCE_EXHAUSTED`` -> 429 with ``Retry-After`` (from the header, else from the
``RetryInfo`` detail's ``retryDelay``); a prompt longer than the model's window -> 400
``context_length_exceeded`` (routing's ``context_window`` fallback); 401/403, and the Gemini
API's 400 ``API_KEY_INVALID`` -> the credential was refused (refetch once, then 502); anything
else as ``gateway.providers.http`` maps it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import aiohttp

from gateway import tracing
from gateway.config import Deployment
from gateway.errors import (
    GatewayError,
    UpstreamCredentialRejected,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
)
from gateway.logs import REDACTOR
from gateway.providers import http
from gateway.providers.base import Provider
from gateway.providers.google_token import TokenMinter
from gateway.providers.pool import UpstreamPool
from gateway.secrets.secret import Secret
from gateway.values import Reply, Usage
from gateway.wire import gemini

# What Google says when a prompt is longer than the model's window (400 INVALID_ARGUMENT).
CONTEXT_WINDOW = re.compile(
    r"input token count .* exceeds the maximum|exceeds the maximum number of tokens", re.I
)
CREDENTIAL_REASONS = frozenset(
    {"API_KEY_INVALID", "ACCESS_TOKEN_EXPIRED", "ACCESS_TOKEN_TYPE_UNSUPPORTED"}
)
_DELAY = re.compile(r"^(\d+(?:\.\d+)?)s$")


def _details(error: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    return [d for d in details if isinstance(d, dict) and str(d.get("@type", "")).endswith(kind)]


def google_failure(name: str, status: int, data: bytes, headers: Mapping[str, str]) -> GatewayError:
    """A Google error answer as a GatewayError (the module docstring lists the mapping)."""
    try:
        error = json.loads(data).get("error")
    except (ValueError, AttributeError, RecursionError):
        error = None
    if not isinstance(error, dict):
        return http.upstream_failure(name, status, data, headers)
    message = error.get("message")
    message = message if isinstance(message, str) else ""
    reasons = {d.get("reason") for d in _details(error, "google.rpc.ErrorInfo")}
    if status in (401, 403) or reasons & CREDENTIAL_REASONS:
        return UpstreamCredentialRejected(f"deployment {name} refused the gateway's credential")
    if status == 429:
        retry_after = headers.get("Retry-After", "")
        if not retry_after.isdigit():
            for info in _details(error, "google.rpc.RetryInfo"):
                match = _DELAY.match(str(info.get("retryDelay", "")))
                if match:
                    retry_after = str(max(1, math.ceil(float(match[1]))))
        extra = {"Retry-After": retry_after} if retry_after.isdigit() else {}
        return UpstreamRateLimited(f"deployment {name} is rate limited", headers=extra)
    if status == 400 and CONTEXT_WINDOW.search(message):
        return UpstreamRejected(
            f"deployment {name} rejected the request: the prompt is longer than the model's "
            "context window",
            upstream_status=400,
            code="context_length_exceeded",
        )
    if status in http.PASS_ON_STATUSES:
        text = f"deployment {name} rejected the request"
        if message:
            text += ": " + REDACTOR.scrub(message)[: http.MAX_PASSED_MESSAGE]
        return UpstreamRejected(text, upstream_status=status)
    return http.upstream_failure(name, status, data, headers)


async def _post(
    session: aiohttp.ClientSession,
    deployment: Deployment,
    url: str,
    payload: bytes,
    headers: dict[str, str],
) -> bytes:
    """``http.post`` with Google's error mapping."""
    name = deployment.name
    if trace_context := tracing.outbound():
        headers = headers | trace_context
    try:
        async with session.post(url, data=payload, headers=headers, allow_redirects=False) as r:
            try:
                if r.status != 200:
                    error = await http.read_prefix(r, http.MAX_ERROR_BODY)
                    raise google_failure(name, r.status, error, r.headers)
                return await http.read_capped(r, name, deployment.max_response_bytes)
            except GatewayError:
                r.close()
                raise
    except http.TRANSPORT_ERRORS as exc:
        raise http.transport_failure(name, exc) from None


async def _open(
    session: aiohttp.ClientSession,
    deployment: Deployment,
    url: str,
    payload: bytes,
    headers: dict[str, str],
) -> aiohttp.ClientResponse:
    """``http.open_stream`` with Google's error mapping."""
    name = deployment.name
    if trace_context := tracing.outbound():
        headers = headers | trace_context
    try:
        response = await session.post(url, data=payload, headers=headers, allow_redirects=False)
    except http.TRANSPORT_ERRORS as exc:
        raise http.transport_failure(name, exc) from None
    if response.status != 200:
        try:
            data = await http.read_prefix(response, http.MAX_ERROR_BODY)
        except http.TRANSPORT_ERRORS as exc:
            raise http.transport_failure(name, exc) from None
        finally:
            response.close()
        raise google_failure(name, response.status, data, response.headers)
    return response


class GoogleAdapter:
    """What the Gemini API and Vertex AI share: the translation, the calls, the stream."""

    models_path = "models"

    def __init__(self, deployment: Deployment, pool: UpstreamPool) -> None:
        assert deployment.base_url is not None
        self.deployment = deployment
        self._pool = pool
        model = deployment.upstream_model or deployment.model
        self._upstream_model = model
        self._model_url = f"{deployment.base_url}/{self.models_path}/{model}"

    async def _headers(self, key: Secret | None) -> dict[str, str]:
        raise NotImplementedError

    def _rejected(self, key: Secret | None) -> None:
        """The upstream refused the credential (a subclass drops what it derived from it)."""

    async def _call(self, url: str, payload: bytes, key: Secret | None) -> bytes:
        headers = await self._headers(key)
        try:
            return await _post(
                self._pool.session(self.deployment), self.deployment, url, payload, headers
            )
        except UpstreamCredentialRejected:
            self._rejected(key)
            raise

    def _parsed(self, data: bytes) -> dict[str, Any]:
        try:
            answer = json.loads(data)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise UpstreamError(f"deployment {self.deployment.name} answered with invalid JSON")
        return answer

    async def chat(self, body: dict[str, Any], key: Secret | None) -> Reply:
        payload = json.dumps(gemini.request_to_gemini(body)).encode()
        data = await self._call(f"{self._model_url}:generateContent", payload, key)
        try:
            completion, usage = gemini.completion_from_gemini(
                self._parsed(data), body.get("model", "")
            )
        except (AttributeError, TypeError, KeyError):
            raise UpstreamError(
                f"deployment {self.deployment.name} answered with invalid JSON"
            ) from None
        return Reply(json.dumps(completion).encode(), usage)

    async def chat_stream(self, body: dict[str, Any], key: Secret | None) -> http.TranslatedStream:
        if body.get("n") not in (None, 1):
            raise gemini._unsupported("n")
        payload = json.dumps(gemini.request_to_gemini(body)).encode()
        headers = await self._headers(key)
        url = f"{self._model_url}:streamGenerateContent?alt=sse"
        try:
            response = await _open(
                self._pool.session(self.deployment), self.deployment, url, payload, headers
            )
        except UpstreamCredentialRejected:
            self._rejected(key)
            raise
        options = body.get("stream_options") or {}
        translator = gemini.StreamTranslator(
            body.get("model", ""), bool(options.get("include_usage"))
        )
        return http.TranslatedStream(
            response, self.deployment, translator, lambda e: translator.feed(e.data), translator.end
        )

    async def close(self) -> None:
        """Nothing to do: the sessions belong to the UpstreamPool."""


class GeminiAdapter(GoogleAdapter):
    async def _headers(self, key: Secret | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["x-goog-api-key"] = key.reveal()
        return headers

    async def embeddings(self, body: dict[str, Any], key: Secret | None) -> Reply:
        request = gemini.embeddings_to_gemini(body, self._upstream_model)
        data = await self._call(
            f"{self._model_url}:batchEmbedContents", json.dumps(request).encode(), key
        )
        try:
            answer = gemini.embeddings_from_gemini(self._parsed(data), body, Usage())
        except (AttributeError, TypeError, KeyError):
            raise UpstreamError(
                f"deployment {self.deployment.name} answered with invalid JSON"
            ) from None
        # The Gemini API reports no token count for embeddings: usage None makes the spend record
        # take the gateway's own estimate of the input (governance.estimate), never 0.
        return Reply(json.dumps(answer).encode(), None)


class VertexAdapter(GoogleAdapter):
    models_path = "publishers/google/models"

    def __init__(self, deployment: Deployment, pool: UpstreamPool) -> None:
        super().__init__(deployment, pool)
        self._tokens = TokenMinter(deployment)

    async def _headers(self, key: Secret | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            token = await self._tokens.token(key)
            headers["Authorization"] = f"Bearer {token.reveal()}"
        return headers

    def _rejected(self, key: Secret | None) -> None:
        self._tokens.drop(key)

    async def embeddings(self, body: dict[str, Any], key: Secret | None) -> Reply:
        request = json.dumps(gemini.embeddings_to_vertex(body)).encode()
        data = await self._call(f"{self._model_url}:predict", request, key)
        try:
            answer, usage = gemini.embeddings_from_vertex(self._parsed(data), body)
        except (AttributeError, TypeError, KeyError):
            raise UpstreamError(
                f"deployment {self.deployment.name} answered with invalid JSON"
            ) from None
        return Reply(json.dumps(answer).encode(), usage)

    async def close(self) -> None:
        await self._tokens.close()


GEMINI = Provider(
    "gemini",
    GeminiAdapter,
    examples={"base_url": "https://generativelanguage.googleapis.com/v1beta"},
)
VERTEX = Provider(
    "vertex_ai",
    VertexAdapter,
    examples={
        "base_url": "https://us-central1-aiplatform.googleapis.com/v1/projects/P/locations/us-central1"
    },
)
