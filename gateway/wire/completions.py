"""The legacy completions API (``POST /v1/completions``), served through chat completions.

Every deployment gets a chat body: the prompt is one user message (so it goes through the
model's chat template; a raw prompt continuation is not what a chat model does, and it is what
no translated provider offers). The answer's text is the choice's ``text``; a stream's chunks
become ``text_completion`` chunks, ending with ``data: [DONE]`` as the legacy API does.

Fields with no chat meaning are refused by name when they ask for something: ``echo``,
``suffix``, ``logprobs``, ``best_of`` above 1, a prompt of token ids or of more than one string.
Pure functions, no I/O.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from gateway.config import MAX_EVENT_BYTES
from gateway.errors import InvalidRequest, UpstreamError, UpstreamTooLarge
from gateway.values import Stream, Usage
from gateway.wire import openai
from gateway.wire.sse import EventReader, EventTooLarge

CARRIED = (  # what goes to the chat call as it is
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
    "seed",
)
# What each refused field may be left at.
OFF: dict[str, tuple[Any, ...]] = {
    "echo": (None, False),
    "suffix": (None, ""),
    "logprobs": (None,),
    "best_of": (None, 1),
}
FIELDS = frozenset({"prompt", *CARRIED, *OFF})


def request_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    for name, off in OFF.items():
        if name in body and body[name] not in off:
            raise InvalidRequest(
                f"'{name}' is not supported: Sealgate serves /v1/completions through chat "
                "completions, which have no equivalent",
                param=name,
                code="unsupported_parameter",
            )
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise InvalidRequest(
            "'prompt' must be one non-empty string (token ids and batches of prompts are not "
            "supported)",
            param="prompt",
        )
    chat: dict[str, Any] = {k: body[k] for k in CARRIED if k in body}
    chat["messages"] = [{"role": "user", "content": prompt}]
    return chat


def completion_from_chat(completion: dict[str, Any], usage: Usage | None) -> dict[str, Any]:
    """A chat completion as a ``text_completion`` (ValueError-family errors when it is not)."""
    choices = []
    for choice in completion["choices"]:
        content = choice["message"].get("content")
        choices.append(
            {
                "text": content if isinstance(content, str) else "",
                "index": choice.get("index", 0),
                "logprobs": None,
                "finish_reason": choice.get("finish_reason"),
            }
        )
    answer: dict[str, Any] = {
        "id": "cmpl-" + str(completion.get("id", "")).removeprefix("chatcmpl-"),
        "object": "text_completion",
        "created": completion.get("created", int(time.time())),
        "model": completion.get("model"),
        "choices": choices,
    }
    if usage is not None:
        answer["usage"] = openai.usage_json(usage)
    return answer


class TextCompletionStream:
    """The internal chat stream re-emitted as ``text_completion`` chunks."""

    def __init__(self, inner: Stream) -> None:
        self._inner = inner
        self._reader = EventReader(MAX_EVENT_BYTES)

    @property
    def usage(self) -> Usage | None:
        return self._inner.usage

    async def chunks(self) -> AsyncIterator[bytes]:
        async for piece in self._inner.chunks():
            try:
                events = self._reader.feed(piece)
            except EventTooLarge:
                raise UpstreamTooLarge("a stream event is larger than the gateway's cap") from None
            out = [self._translate(event.data) for event in events if event.data]
            if out:
                yield b"".join(out)

    def _translate(self, data: bytes) -> bytes:
        if data == b"[DONE]":
            return openai.DONE
        try:
            chunk = json.loads(data)
            choices = [
                {
                    "text": (c.get("delta") or {}).get("content") or "",
                    "index": c.get("index", 0),
                    "logprobs": None,
                    "finish_reason": c.get("finish_reason"),
                }
                for c in chunk.get("choices") or []
            ]
            out: dict[str, Any] = {
                "id": "cmpl-" + str(chunk.get("id", "")).removeprefix("chatcmpl-"),
                "object": "text_completion",
                "created": chunk.get("created", 0),
                "model": chunk.get("model"),
                "choices": choices,
            }
            if chunk.get("usage") is not None:
                out["usage"] = chunk["usage"]
            return openai.event(out)
        except (ValueError, AttributeError, TypeError, RecursionError):
            raise UpstreamError("the upstream sent an invalid stream event") from None

    async def aclose(self) -> None:
        await self._inner.aclose()
