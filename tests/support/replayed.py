"""An OpenAI-format upstream stream replayed in process: the pieces of an SSE body handed to
``OpenAIUpstreamStream`` as aiohttp would hand them, with no socket. For the tests that pin the
bytes a translated stream makes, and for the benches that time it (bench/responses.py,
bench/messages.py). Nothing in it suspends, so a coroutine over it may be run to its end with
``run_now`` (no event loop)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

from gateway.config import Deployment
from gateway.providers.openai import OpenAIUpstreamStream
from gateway.providers.registry import PROVIDERS

T = TypeVar("T")

DEPLOYMENT = Deployment.model_validate(
    {
        "model": "m",
        "provider": "openai_compatible",
        "base_url": "http://127.0.0.1:9/v1",
        "allow_private_network": True,
    },
    context={"providers": PROVIDERS},
)


class _Content:
    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    async def iter_any(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece


class ReplayedResponse:
    """What ``OpenAIUpstreamStream`` reads of an ``aiohttp.ClientResponse``."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.content = _Content(pieces)
        self.released = False

    def release(self) -> None:
        self.released = True

    def close(self) -> None:
        self.released = True


def upstream_stream(pieces: list[bytes]) -> OpenAIUpstreamStream:
    """An OpenAI-format upstream stream whose body arrives in ``pieces``."""
    return OpenAIUpstreamStream(ReplayedResponse(pieces), DEPLOYMENT)  # type: ignore[arg-type]


def run_now(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never waits for anything (a replayed stream's drain)."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("the coroutine waited for something")


async def drained(stream: Any) -> list[bytes]:
    """Every chunk ``stream.chunks()`` yields, in order."""
    return [piece async for piece in stream.chunks()]
