"""What every provider adapter offers the router, and the values it hands back.

An adapter translates one wire format: it builds the upstream request from an OpenAI-shaped body,
sends it through the deployment's pooled client, and turns the answer (or the failure) into an
OpenAI-shaped body or a GatewayError. Adapters hold no credentials: the key is passed per call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.secrets.secret import Secret


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, usage: Any) -> Usage | None:
        if not isinstance(usage, dict):
            return None
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens", 0) if isinstance(details, dict) else 0
        return cls(
            prompt_tokens=_int(usage.get("prompt_tokens")),
            completion_tokens=_int(usage.get("completion_tokens")),
            cached_tokens=_int(cached),
        )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete upstream answer: the body to send to the client as is, and its usage."""

    body: bytes
    usage: Usage | None


class Stream(Protocol):
    """An upstream stream whose status was already checked: iterate to pass chunks on."""

    @property
    def usage(self) -> Usage | None: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Adapter(Protocol):
    async def chat(self, body: dict[str, Any], key: Secret | None) -> Reply: ...

    async def chat_stream(self, body: dict[str, Any], key: Secret | None) -> Stream: ...

    async def embeddings(self, body: dict[str, Any], key: Secret | None) -> Reply: ...

    async def close(self) -> None: ...
