"""Counting what an answer used when the upstream does not say.

A stream is passed through untouched; on the way each chunk's ``"delta"`` events are counted, and
a stream whose upstream sent no ``usage`` is charged one completion token per delta event (an
OpenAI-style stream sends about one token per event, so this is close and errs high by the two
framing events; read as parsed chunks, ``gateway.values.parsed_chunks``, each choice that
carries a ``delta`` counts once). A complete answer without ``usage`` is charged one token per
three bytes of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from gateway.governance.estimate import BYTES_PER_TOKEN
from gateway.values import Reply, Stream, Usage, parsed_chunks

DELTA = b'"delta"'


class CountingStream:
    def __init__(self, inner: Stream) -> None:
        self._inner = inner
        self.counted = 0
        self.usage: Usage | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner.chunks():
            self.counted += chunk.count(DELTA)
            yield chunk
        self.usage = self._inner.usage

    def parsed(self) -> AsyncIterator[list[Any]] | None:
        inner = parsed_chunks(self._inner)
        return None if inner is None else self._counted(inner)

    async def _counted(self, inner: AsyncIterator[list[Any]]) -> AsyncIterator[list[Any]]:
        async for batch in inner:
            for chunk in batch:
                choices = chunk.get("choices") if type(chunk) is dict else None
                if type(choices) is list:
                    self.counted += sum(1 for c in choices if type(c) is dict and "delta" in c)
            yield batch
        self.usage = self._inner.usage

    async def aclose(self) -> None:
        await self._inner.aclose()
        self.usage = self._inner.usage

    def charged(self, finished: bool) -> Usage | None:
        """The usage to charge: the upstream's; for a stream that did not finish, at least one
        completion token per delta that went out (an upstream that reports usage as it starts,
        as Anthropic does, counted its first token, not its last)."""
        usage = self.usage
        if finished or usage is None or usage.completion_tokens >= self.counted:
            return usage
        return Usage(
            usage.prompt_tokens, self.counted, usage.cached_tokens, usage.cache_write_tokens
        )


def reply_tokens(reply: Reply) -> int:
    return -(-len(reply.body) // BYTES_PER_TOKEN)
