"""How one Anthropic Messages request is served by each deployment the router tries.

    deployment            what it gets                          what comes back
    anthropic             the client's body, untranslated       the upstream's answer or stream,
                          (``gateway.wire.anthropic.native``)   as it sent it
    any other provider    the internal chat body                translated to a message or to
                          (``gateway.wire.anthropic.ingress``)  Anthropic events

A translated deployment refuses, with a 400 naming them, what it cannot serve without changing
the request's meaning (server tools, ``top_k``, ...), and answers without what it ignores, named
in ``x-sealgate-ignored``. Under a guardrail policy every deployment gets the translated body,
because that is the body the guardrails read and mask (``Inference.messages``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.errors import UpstreamError
from gateway.governance import estimate
from gateway.providers.anthropic import AnthropicAdapter, allowed_betas
from gateway.routing.router import Route
from gateway.secrets.secret import Secret
from gateway.values import Reply, Stream
from gateway.wire.anthropic import native
from gateway.wire.anthropic.ingress import Translated, message_from_openai
from gateway.wire.anthropic.streams import AnthropicEventStream

IGNORED_HEADER = b"x-sealgate-ignored"

Attempt = Callable[[Route, Secret | None], Awaitable[Any]]


def _why(route: Route) -> str:
    deployment = route.deployment
    return (
        f"deployment {deployment.name} ({deployment.provider}) does not speak the Anthropic "
        "Messages API"
    )


class MessagesCall:
    """One Messages request: the client's body, its translation, its ``anthropic-beta``
    header, and (once an attempt is made) whether it went through untranslated."""

    def __init__(self, raw: dict[str, Any], translated: Translated, beta: bytes | None) -> None:
        self.raw = raw
        self.translated = translated
        self.beta = beta
        self.model: str = translated.body["model"]
        self.native = False
        self._estimate: int | None = None

    @property
    def input_estimate(self) -> int:
        """The prompt's tokens as the gateway estimates them (admission's, when it ran)."""
        if self._estimate is None:
            self._estimate = estimate.prompt_tokens(self.translated.body)
        return self._estimate

    @input_estimate.setter
    def input_estimate(self, value: int) -> None:
        self._estimate = value

    def cache_body(self) -> dict[str, Any]:
        """What the response cache keys the request on: the client's body and its betas."""
        return {**self.raw, "anthropic-beta": (self.beta or b"").decode("latin-1")}

    def attempt(self, stream: bool) -> Attempt:
        async def call(route: Route, key: Secret | None) -> Reply | Stream:
            adapter = route.adapter
            if isinstance(adapter, AnthropicAdapter):
                self.native = True
                if stream:
                    return await adapter.messages_stream(self.raw, key, self.beta)
                return await adapter.messages(self.raw, key, self.beta)
            self.native = False
            refusal = self.translated.refusal(_why(route))
            if refusal is not None:
                raise refusal
            if stream:
                inner = await adapter.chat_stream(self.translated.body, key)
                return AnthropicEventStream(inner, self.model, self.input_estimate)
            reply = await adapter.chat(self.translated.body, key)
            message = self.message_of(reply.body, route.deployment.name, reply.parsed)
            return Reply(message, reply.usage)

        return call

    def count(self) -> Attempt:
        """count_tokens: the upstream's count from an Anthropic deployment; elsewhere the
        gateway's own estimate of the translated prompt (no upstream call)."""

        async def call(route: Route, key: Secret | None) -> Reply:
            adapter = route.adapter
            if isinstance(adapter, AnthropicAdapter):
                self.native = True
                return await adapter.count_tokens(self.raw, key, self.beta)
            self.native = False
            refusal = self.translated.refusal(_why(route))
            if refusal is not None:
                raise refusal
            return Reply(json.dumps({"input_tokens": self.input_estimate}).encode(), None)

        return call

    def message_of(self, answer: bytes, deployment: str, parsed: Any = None) -> bytes:
        """An internal chat.completion as the Messages answer the client gets; from ``parsed``
        (the adapter's own parse of ``answer``, ``Reply.parsed``) when there is one."""
        try:
            completion = parsed if parsed is not None else json.loads(answer)
            message = message_from_openai(completion, self.model)
        except (ValueError, AttributeError, TypeError, KeyError, IndexError, RecursionError):
            raise UpstreamError(
                f"deployment {deployment} answered with something that is not a chat completion"
            ) from None
        return json.dumps(message).encode()

    def headers(self, route_deployment: Any) -> list[tuple[bytes, bytes]]:
        """What the answer says about fields the deployment did not get (never silently)."""
        if self.native:
            _, dropped = native.betas(self.beta, allowed_betas(route_deployment))
            if not dropped:
                return []
            return [(native.IGNORED_BETA_HEADER, native.ignored_betas(dropped).encode())]
        ignored = list(self.translated.ignored)
        if self.beta:
            ignored.append("anthropic-beta")
        return [(IGNORED_HEADER, ", ".join(ignored).encode())] if ignored else []
