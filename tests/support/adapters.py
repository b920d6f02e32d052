"""A provider adapter that answers from a script, for in-process tests of routing and of the
inference routes (no upstream, no gateway process)."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from gateway.errors import GatewayError
from gateway.secrets.secret import Secret
from gateway.values import Reply, Usage


@dataclass(frozen=True)
class Stall:
    """Wait ``seconds`` (an upstream thinking, or hanging), then go on as ``then`` says."""

    seconds: float
    then: GatewayError | Exception | str | None = None


Outcome = GatewayError | Exception | str | Stall


class ScriptedAdapter:
    """Answers each call with the next outcome of its script (an error is raised; a string is
    the reply's body; a Stall waits first), and records the key it was handed."""

    def __init__(self, name: str, *script: Outcome) -> None:
        self.name = name
        self.script: deque[Outcome] = deque(script)
        self.keys: list[str | None] = []
        self.streams: list[ScriptedStream] = []

    async def _next(self, key: Secret | None) -> Reply:
        self.keys.append(key.reveal() if key is not None else None)
        outcome = self.script.popleft() if self.script else f"{self.name} ok"
        if isinstance(outcome, Stall):
            await asyncio.sleep(outcome.seconds)
            outcome = outcome.then if outcome.then is not None else f"{self.name} ok"
        if isinstance(outcome, Exception):
            raise outcome
        return Reply(outcome.encode(), Usage(1, 1))

    async def chat(self, body: dict[str, Any], key: Secret | None) -> Reply:
        return await self._next(key)

    async def chat_stream(self, body: dict[str, Any], key: Secret | None) -> ScriptedStream:
        await self._next(key)
        self.streams.append(ScriptedStream(["Hello", " there"]))
        return self.streams[-1]

    async def embeddings(self, body: dict[str, Any], key: Secret | None) -> Reply:
        return await self._next(key)

    async def close(self) -> None:
        return None


class ScriptedStream:
    """An OpenAI-format stream of text deltas, then usage and [DONE]."""

    def __init__(self, words: list[str]) -> None:
        self.words = words
        self.usage: Usage | None = None
        self.closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        for word in self.words:
            chunk = {"id": "c", "choices": [{"index": 0, "delta": {"content": word}}]}
            yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
        self.usage = Usage(3, len(self.words))
        yield b"data: [DONE]\n\n"

    async def aclose(self) -> None:
        self.closed = True
