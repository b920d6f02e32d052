"""AWS Bedrock upstream: Converse and ConverseStream for chat, InvokeModel for embeddings (Titan,
Cohere) and rerank (Cohere Rerank on Bedrock), every request signed with SigV4 by
``gateway.providers.sigv4``.

    POST {base}/model/{modelId}/converse           JSON
    POST {base}/model/{modelId}/converse-stream    application/vnd.amazon.eventstream
    POST {base}/model/{modelId}/invoke             embeddings, rerank

The base URL is the regional endpoint, ``https://bedrock-runtime.<region>.amazonaws.com``
(the egress allowlist has it by pattern); the region is the deployment's ``aws.region`` or read
from that host. The model id goes into the path percent-encoded (``:`` and ``/`` of ids and
ARNs), and the URL is sent exactly as it was signed. The event-stream framing of
ConverseStream is decoded by botocore's ``EventStreamBuffer`` (prelude and message CRCs
checked; its header parser's answers held per header block, ``HeldHeaders``); the events are
translated by ``gateway.wire.bedrock``.

Errors (``failure``): ``ThrottlingException`` / 429 -> 429 with Retry-After (the upstream's,
else ``THROTTLE_RETRY_AFTER``); a ValidationException that says the input is too long ->
400 ``context_length_exceeded`` (routing's ``context_window`` class); 401/403 and the signature
and token exceptions -> the credential is fetched again once (the router does it for a key
pair by reference, this adapter for web identity), then 502.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

from gateway.config import Deployment
from gateway.config.aws import region_of, sts_endpoint
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    SecretUnavailable,
    UpstreamCredentialRejected,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTruncated,
)
from gateway.logs import REDACTOR
from gateway.providers import http
from gateway.providers.aws_credentials import SERVICE, WebIdentityCredentials, key_pair
from gateway.providers.base import Provider
from gateway.providers.pool import UpstreamPool
from gateway.providers.sigv4 import AwsCredentials, sign
from gateway.secrets.secret import Secret
from gateway.values import Reply, Usage
from gateway.wire import bedrock as wire
from gateway.wire import cohere as cohere_wire
from gateway.wire.openai import count_of

log = logging.getLogger("sealgate.upstream")

THROTTLE_RETRY_AFTER = "1"  # seconds, when a throttled answer names no Retry-After
CREDENTIAL_ERRORS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "AccessDeniedException",
        "IncompleteSignatureException",
    }
)
TOO_LONG_WORDING = (
    "too long",
    "too many input tokens",
    "context length",
    "context window",
    "maximum context",
)
TITAN_CONCURRENCY = 8  # Titan embeds one text a call: the list is sent this many at a time


def _error_of(data: bytes, headers: Mapping[str, str]) -> tuple[str, str]:
    """The exception name (``x-amzn-ErrorType``, else the body's ``__type``) and message of a
    Bedrock error answer (``{"message": ...}``)."""
    kind = headers.get("x-amzn-ErrorType", "")
    message = ""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        document = None
    if isinstance(document, dict):
        found = document.get("message", document.get("Message"))
        message = found if isinstance(found, str) else ""
        kind = kind or str(document.get("__type", ""))
    return kind.split(":")[0].rsplit("#", 1)[-1], message


def failure(name: str, status: int, data: bytes, headers: Mapping[str, str]) -> GatewayError:
    kind, message = _error_of(data, headers)
    if status == 429 or kind == "ThrottlingException":
        retry_after = headers.get("Retry-After", "")
        wait = retry_after if retry_after.isdigit() else THROTTLE_RETRY_AFTER
        return UpstreamRateLimited(
            f"deployment {name} is rate limited", headers={"Retry-After": wait}
        )
    if status in (401, 403) or kind in CREDENTIAL_ERRORS:
        return UpstreamCredentialRejected(f"deployment {name} refused the gateway's credential")
    return http.message_failure(name, status, message, headers, TOO_LONG_WORDING)


class BedrockAdapter:
    def __init__(self, deployment: Deployment, pool: UpstreamPool) -> None:
        assert deployment.base_url is not None
        self.deployment = deployment
        self._pool = pool
        host = urlsplit(deployment.base_url).hostname
        region = region_of(deployment.aws, host)
        assert region is not None  # PROVIDER.problem checked it
        self.region = region
        model = deployment.upstream_model or deployment.model
        self._model = model
        self._prefix = f"{deployment.base_url}/model/{quote(model, safe='')}"
        self._identity: WebIdentityCredentials | None = None
        self._pair: tuple[Secret, AwsCredentials] | None = None  # the last key parsed
        identity = deployment.aws.web_identity if deployment.aws is not None else None
        endpoint = sts_endpoint(deployment.aws, host)
        if identity is not None and endpoint is not None:
            self._identity = WebIdentityCredentials(
                identity,
                endpoint,
                deployment.allow_private_network,
                pool=pool,
                name=deployment.name,
            )

    # -- signing and sending ---------------------------------------------------------------------
    async def _credentials(self, key: Secret | None) -> AwsCredentials:
        if self._identity is not None:
            return await self._identity.get()
        if key is None:
            raise SecretUnavailable(f"deployment {self.deployment.name} has no AWS credential")
        held = self._pair
        if held is not None and held[0] is key:  # the broker hands out the same Secret
            return held[1]
        pair = key_pair(key)
        self._pair = (key, pair)
        return pair

    def signed(
        self, credentials: AwsCredentials, url: str, payload: bytes, accept: str
    ) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": accept}
        return sign(credentials, self.region, url, payload, headers, SERVICE)

    async def _send(self, operation: str, payload: bytes, key: Secret | None, stream: bool) -> Any:
        """POST to ``{prefix}/{operation}``: the answer's bytes, or the open stream. With web
        identity, a refused credential is dropped and traded again once."""
        url = f"{self._prefix}/{operation}"
        accept = "application/vnd.amazon.eventstream" if stream else "application/json"
        session = self._pool.session(self.deployment)
        send = http.open_stream if stream else http.post
        credentials = await self._credentials(key)
        for attempt in (1, 2):
            headers = self.signed(credentials, url, payload, accept)
            try:
                return await send(
                    session, self.deployment, URL(url, encoded=True), payload, headers, failure
                )
            except UpstreamCredentialRejected:
                if self._identity is None or attempt == 2:
                    raise
                self._identity.invalidate(credentials)
                credentials = await self._identity.get()
        raise AssertionError("unreachable")

    # -- chat ------------------------------------------------------------------------------------
    def _payload(self, body: dict[str, Any]) -> bytes:
        return json.dumps(wire.request_to_converse(body), separators=(",", ":")).encode()

    async def chat(self, body: dict[str, Any], key: Secret | None) -> Reply:
        data = await self._send("converse", self._payload(body), key, stream=False)
        try:
            completion, usage = wire.completion_from_converse(
                json.loads(data), body.get("model", "")
            )
        except (ValueError, AttributeError, TypeError, KeyError, RecursionError):
            raise UpstreamError(
                f"deployment {self.deployment.name} answered with invalid JSON"
            ) from None
        return Reply(json.dumps(completion).encode(), usage)

    async def chat_stream(self, body: dict[str, Any], key: Secret | None) -> BedrockUpstreamStream:
        response = await self._send("converse-stream", self._payload(body), key, stream=True)
        options = body.get("stream_options") or {}
        translator = wire.ConverseStreamTranslator(
            body.get("model", ""), bool(options.get("include_usage"))
        )
        return BedrockUpstreamStream(response, self.deployment, translator)

    # -- embeddings and rerank on InvokeModel ----------------------------------------------------
    async def _invoke(self, request: dict[str, Any], key: Secret | None) -> Any:
        payload = json.dumps(request, separators=(",", ":")).encode()
        data = await self._send("invoke", payload, key, stream=False)
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            raise UpstreamError(
                f"deployment {self.deployment.name} answered with invalid JSON"
            ) from None

    async def embeddings(self, body: dict[str, Any], key: Secret | None) -> Reply:
        family = wire.embedding_family(self._model)
        inputs = wire.embedding_inputs(body)
        model = body.get("model", "")
        try:
            if family == "cohere":
                answer = await self._invoke(wire.cohere_request(inputs, body), key)
                vectors = wire.cohere_vectors(answer)
                tokens = 0  # Cohere on Bedrock reports no token count in its body
            else:
                limit = asyncio.Semaphore(TITAN_CONCURRENCY)

                async def one(text: str) -> Any:
                    async with limit:
                        return await self._invoke(wire.titan_request(text, body), key)

                answers = await asyncio.gather(*(one(text) for text in inputs))
                vectors = [a["embedding"] for a in answers]
                tokens = sum(count_of(a.get("inputTextTokenCount")) for a in answers)
        except (KeyError, TypeError, AttributeError):
            raise UpstreamError(
                f"deployment {self.deployment.name} answered with something that is not "
                "an embedding"
            ) from None
        listed = wire.embeddings_list(vectors, model, tokens, body.get("encoding_format"))
        return Reply(json.dumps(listed).encode(), Usage(prompt_tokens=tokens))

    async def rerank(self, body: dict[str, Any], key: Secret | None) -> Reply:
        if "rerank" not in self._model:
            raise InvalidRequest(
                f"model {body.get('model')!r} is not a rerank model on bedrock", param="model"
            )
        request = cohere_wire.rerank_request(body, None)
        request["api_version"] = 2
        answer = await self._invoke(request, key)
        return cohere_wire.rerank_reply(answer, body, self.deployment.name)

    async def close(self) -> None:
        if self._identity is not None:
            await self._identity.close()


# botocore's header parser answers the same for the same bytes, and ConverseStream's header
# blocks are few (one per event type, the same in every stream): its answers are held by the
# block's bytes, at most this many blocks of at most this size (what an upstream sends beyond
# them is parsed each time, as before).
MAX_HELD_HEADER_BLOCKS = 64
MAX_HELD_HEADER_BYTES = 512


class HeldHeaders:
    """botocore's ``EventStreamHeaderParser``, its answer held per header block. The held
    headers are read-only (a ``MappingProxyType``): every stream of the process shares them."""

    def __init__(self) -> None:
        from botocore.eventstream import EventStreamHeaderParser  # with the first stream

        self._parse = EventStreamHeaderParser().parse
        self.held: dict[bytes, Mapping[str, Any]] = {}

    def parse(self, data: bytes) -> Mapping[str, Any]:
        headers = self.held.get(data)
        if headers is None:
            headers = MappingProxyType(self._parse(data))
            if len(data) <= MAX_HELD_HEADER_BYTES and len(self.held) < MAX_HELD_HEADER_BLOCKS:
                self.held[data] = headers
        return headers


class EventStreamDecoder:
    """A ConverseStream body, piece by piece, as OpenAI chunks: botocore's ``EventStreamBuffer``
    frames it (prelude and message CRCs checked before anything is read), with its header
    parser's answers held (``HeldHeaders``); each event's payload goes to the translator, which
    parses it once. An ``exception`` message is raised as the gateway's own error."""

    headers: HeldHeaders | None = None  # one for the process, made with the first stream

    def __init__(
        self, name: str, max_event_bytes: int, translator: wire.ConverseStreamTranslator
    ) -> None:
        from botocore.eventstream import EventStreamBuffer

        if EventStreamDecoder.headers is None:
            EventStreamDecoder.headers = HeldHeaders()
        self._buffer = EventStreamBuffer()
        # The buffer's one header parser (botocore sets it in __init__ and calls its ``parse``
        # with each message's header bytes); tests/providers checks that it is used.
        self._buffer._header_parser = EventStreamDecoder.headers
        self._name = name
        self._max_event_bytes = max_event_bytes
        self._translator = translator

    def feed(self, piece: bytes) -> list[Any]:
        """The chunks of the messages ``piece`` completes, as the translator writes them (bytes,
        or their parse when the stream hands them over parsed); botocore's ``ParserError`` when
        the framing is broken."""
        buffer = self._buffer
        buffer.add_data(piece)
        out: list[Any] = []
        for message in buffer:
            out += self._message(message.headers, message.payload)
        return out

    def _message(self, headers: Mapping[str, Any], payload: bytes) -> list[Any]:
        name = self._name
        if len(payload) > self._max_event_bytes:
            limit = self._max_event_bytes
            raise http.too_large(name, "a stream event", limit, "upstream_event_too_large")
        kind = headers.get(":message-type")
        if kind == "event":
            try:
                return self._translator.feed(str(headers.get(":event-type")), payload)
            except UpstreamError as exc:
                raise UpstreamError(f"deployment {name}: {exc.message}", code=exc.code) from None
        exception = str(headers.get(":exception-type") or headers.get(":error-code") or "error")
        _, message = _error_of(payload, {})
        log.warning(
            "upstream reported an error mid-stream",
            extra={
                "sg_deployment": name,
                "sg_error": exception[:64],
                "sg_upstream_message": REDACTOR.scrub(message)[:500],
            },
        )
        code = "rate_limit_exceeded" if exception.lower().startswith("throttling") else None
        raise UpstreamError(f"deployment {name} reported an error mid-stream", code=code)


class BedrockUpstreamStream:
    """A ConverseStream body: event-stream messages (``EventStreamDecoder``) re-emitted as OpenAI
    chunks. An ``exception`` message ends the stream with the gateway's own error; a stream
    that ends before its ``metadata`` event with ``UpstreamTruncated``."""

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        deployment: Deployment,
        translator: wire.ConverseStreamTranslator,
    ) -> None:
        self._response = response
        self._deployment = deployment
        self._translator = translator

    @property
    def usage(self) -> Usage | None:
        return self._translator.usage

    def chunks(self) -> AsyncIterator[bytes]:
        return self._translated(b"".join)

    def parsed(self) -> AsyncIterator[list[Any]]:
        """The stream as its parsed chunks (``gateway.values.parsed_chunks``): the translator
        writes each chunk as its parse, not bytes to be parsed again."""
        self._translator.parsed = True
        return self._translated(http.as_batch)

    async def _translated(self, batch: Callable[[list[Any]], Any]) -> AsyncIterator[Any]:
        deployment = self._deployment
        name = deployment.name
        from botocore.eventstream import ParserError  # with the first stream

        decoder = EventStreamDecoder(name, deployment.max_event_bytes, self._translator)
        cap, size = deployment.max_stream_bytes, 0
        try:
            async for piece in self._response.content.iter_any():
                size += len(piece)
                if size > cap:
                    raise http.too_large(name, "a stream", cap)
                out = decoder.feed(piece)
                if out:
                    yield batch(out)
        except ParserError:
            raise UpstreamError(f"deployment {name} sent a malformed event stream") from None
        except http.TRANSPORT_ERRORS as exc:
            raise http.transport_failure(name, exc) from None
        finally:
            self._response.release()
        if not self._translator.done:
            raise UpstreamTruncated(f"deployment {name} ended the stream early")

    async def aclose(self) -> None:
        self._response.close()


class BedrockProvider(Provider):
    def problem(self, deployment: Deployment) -> str | None:
        found = super().problem(deployment)
        if found is not None:
            return found
        host = urlsplit(deployment.base_url or "").hostname
        if region_of(deployment.aws, host) is None:
            return (
                "provider bedrock needs aws.region, or a base_url of the form "
                "https://bedrock-runtime.<region>.amazonaws.com"
            )
        identity = deployment.aws.web_identity if deployment.aws is not None else None
        if (identity is None) == (deployment.credential is None):
            return (
                "provider bedrock needs exactly one of credential (a reference to the access "
                "key pair) and aws.web_identity"
            )
        return None


def _adapter(deployment: Deployment, pool: UpstreamPool) -> BedrockAdapter:
    return BedrockAdapter(deployment, pool)


PROVIDER = BedrockProvider(
    "bedrock",
    _adapter,
    needs_credential=False,
    options=frozenset({"aws"}),
    examples={"aws": "{region: us-east-1}"},
)
