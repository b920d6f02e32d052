"""Values that cross every layer: what an upstream call used, and how its answer comes back.

An adapter (``gateway.providers``) produces them; routing passes them on; governance prices and
counts them; the HTTP layer sends them. They sit at the ground so none of those layers has to
import another sideways for a type.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final, Protocol


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    # Prompt tokens written to the provider's prompt cache (Bedrock, Anthropic): counted in
    # prompt_tokens, apart so that a cache-write price can be applied to them.
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete upstream answer: the body to send to the client as is, and its usage.

    ``parsed`` is ``body`` as the adapter already holds it (what ``json.loads(body)`` gives),
    or None: a route that translates the answer reads it instead of parsing ``body`` again.
    Nothing may change it (the body sent elsewhere would no longer match)."""

    body: bytes
    usage: Usage | None
    parsed: Any = field(default=None, compare=False, repr=False)


class Stream(Protocol):
    """An upstream stream whose status was already checked: iterate to pass chunks on."""

    @property
    def usage(self) -> Usage | None: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class _End:
    __slots__ = ()

    def __repr__(self) -> str:
        return "END"


# In a stream's parsed chunks: where the upstream sent ``data: [DONE]``.
END: Final = _End()


def parsed_chunks(stream: Stream) -> AsyncIterator[list[Any]] | None:
    """``stream`` read as the chat chunks its events carry, parsed, when it offers them.

    A stream that frames and parses an OpenAI-format upstream's events anyway (to read usage and
    errors) may offer them parsed through a ``parsed()`` method: one list per batch that
    ``chunks()`` would have sent as one piece, each item what ``json.loads`` made of one event's
    data (None when it was not JSON; events without data left out), or ``END`` for ``[DONE]``.
    A wrapper that passes chunks on untouched offers it when its inner stream does; one that
    changes the bytes (a guardrail) does not. A translator to another wire format (Responses,
    Anthropic Messages) reads this instead of framing and parsing the same events again; the
    stream is then consumed through it, not ``chunks()``. None when only bytes are on offer."""
    parsed = getattr(stream, "parsed", None)
    result: AsyncIterator[list[Any]] | None = parsed() if parsed is not None else None
    return result
