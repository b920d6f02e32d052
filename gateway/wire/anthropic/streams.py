"""Anthropic Messages streams, translated both ways.

    UpstreamEventTranslator   Anthropic events from an upstream  ->  OpenAI chat.completion.chunk
    ClientEventTranslator     the internal OpenAI SSE stream      ->  Anthropic events to a client
    AnthropicEventStream      a Stream re-emitted to a client as Anthropic events

Pure: bytes and events in, bytes out; the upstream connection is the provider adapter's.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from gateway.config import MAX_EVENT_BYTES
from gateway.errors import UpstreamError, UpstreamTooLarge
from gateway.values import Stream, Usage
from gateway.wire import openai
from gateway.wire.anthropic import vocabulary as v
from gateway.wire.anthropic.native import message_id
from gateway.wire.sse import EventReader, EventTooLarge


class UpstreamEventTranslator:
    """Anthropic stream events in, OpenAI ``chat.completion.chunk`` SSE lines out. An event
    that is not JSON, or whose fields have the wrong types, is an UpstreamError; so is an
    ``error`` event, in the gateway's words, with the upstream's error type only when it is one
    the API documents (the upstream's message is not repeated: it may echo anything)."""

    def __init__(self, model: str, include_usage: bool, structured: str | None = None) -> None:
        self.model = model
        self.include_usage = include_usage
        # The forced tool serving ``response_format``: its input streams as the answer's text.
        self.structured = structured
        self.answer_block: int | None = None
        self.id = "chatcmpl-"
        self.created = int(time.time())
        self.input = Usage()
        self.output_tokens = 0
        self.tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_calls index
        self.done = False

    @property
    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self.input.prompt_tokens,
            completion_tokens=self.output_tokens,
            cached_tokens=self.input.cached_tokens,
        )

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return openai.chunk(self.id, self.created, self.model, delta, finish)

    def feed(self, event: bytes, data: bytes) -> list[bytes]:
        if not data:
            return []
        try:
            payload = json.loads(data)
            return self._translate(payload, event.decode("latin-1"))
        except (ValueError, AttributeError, TypeError, KeyError, RecursionError):
            raise UpstreamError("the upstream sent an invalid stream event") from None

    def _translate(self, payload: Any, event: str) -> list[bytes]:
        kind = payload.get("type", event)
        if kind == "message_start":
            message = payload.get("message", {})
            self.id = "chatcmpl-" + str(message.get("id", ""))
            self.input = v.usage_of(message.get("usage"))
            self.output_tokens = openai.count_of((message.get("usage") or {}).get("output_tokens"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = payload.get("content_block", {})
            if (
                block.get("type") == "tool_use"
                and self.structured is not None
                and block.get("name") == self.structured
            ):
                self.answer_block = payload.get("index", 0)
                return []
            if block.get("type") == "tool_use":
                index = self.tool_index.setdefault(payload.get("index", 0), len(self.tool_index))
                call = {
                    "index": index,
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            text = block.get("text")
            return [self._chunk({"content": text})] if text else []
        if kind == "content_block_delta":
            delta = payload.get("delta", {})
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta" and payload.get("index", 0) == (
                self.answer_block
            ):
                return [self._chunk({"content": delta.get("partial_json", "")})]
            if delta.get("type") == "input_json_delta":
                index = self.tool_index.get(payload.get("index", 0), 0)
                call = {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
                return [self._chunk({"tool_calls": [call]})]
            return []
        if kind == "message_delta":
            usage = payload.get("usage") or {}
            self.output_tokens = openai.count_of(usage.get("output_tokens")) or self.output_tokens
            reason = (payload.get("delta") or {}).get("stop_reason")
            finish = v.finish_reason(reason)
            if self.answer_block is not None and finish == "tool_calls":
                finish = "stop"
            return [self._chunk({}, finish)]
        if kind == "message_stop":
            self.done = True
            out = []
            if self.include_usage:
                out.append(openai.usage_chunk(self.id, self.created, self.model, self.usage))
            return [*out, openai.DONE]
        if kind == "error":
            error = payload.get("error")
            reported = error.get("type") if isinstance(error, dict) else None
            known = reported if reported in v.UPSTREAM_ERROR_TYPES else None
            raise UpstreamError("the upstream reported an error mid-stream", code=known)
        return []  # ping, content_block_stop, and events added to the API later


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: ".encode() + json.dumps({"type": kind, **data}).encode() + b"\n\n"


class ClientEventTranslator:
    """Internal (OpenAI) SSE bytes in, Anthropic stream events out. The internal stream's
    events are framed again here in linear time; each one is already within its deployment's
    ``max_event_bytes``, so the frame's own cap is the most that may be configured. A chunk
    whose fields have the wrong types ends the stream as the upstream's fault."""

    def __init__(self, model: str, input_estimate: int = 0) -> None:
        self.model = model
        # message_start goes out before an OpenAI-format upstream reports usage (at its end):
        # it carries the gateway's estimate, and message_delta the upstream's count.
        self.input_estimate = input_estimate
        self.cached_tokens = 0
        self.reader = EventReader(MAX_EVENT_BYTES)
        self.started = False
        self.block: str | None = None  # "text" or "tool" while a content block is open
        self.index = -1
        self.tools: dict[int, int] = {}  # OpenAI tool_calls index -> Anthropic block index
        self.stop_reason = "end_turn"
        self.input_tokens = 0
        self.output_tokens = 0
        self.finished = False

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        try:
            events = self.reader.feed(data)
        except EventTooLarge:
            message = "the upstream sent a stream event too large to translate"
            raise UpstreamTooLarge(message, code="upstream_event_too_large") from None
        for event in events:
            if event.data:
                try:
                    out += self._data(event.data)
                except (AttributeError, TypeError, ValueError, KeyError, RecursionError):
                    raise UpstreamError(
                        "the upstream sent a stream chunk of the wrong shape"
                    ) from None
        return out

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        self.started = True
        message: dict[str, Any] = {
            "id": message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_estimate, "output_tokens": 0},
        }
        return [_event("message_start", {"message": message})]

    def _close_block(self) -> list[bytes]:
        if self.block is None:
            return []
        self.block = None
        return [_event("content_block_stop", {"index": self.index})]

    def _open(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        out = self._close_block()
        self.index += 1
        self.block = kind
        return [*out, _event("content_block_start", {"index": self.index, "content_block": block})]

    def _data(self, data: bytes) -> list[bytes]:
        if data == b"[DONE]":
            return self.finish()
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError):
            return []
        if not isinstance(chunk, dict):
            return []
        out = [] if self.started else self._start(chunk)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.output_tokens = openai.count_of(usage.get("completion_tokens"))
            self.input_tokens = openai.count_of(usage.get("prompt_tokens"))
            details = usage.get("prompt_tokens_details")
            if isinstance(details, dict):
                self.cached_tokens = min(
                    openai.count_of(details.get("cached_tokens")), self.input_tokens
                )
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if self.block != "text":
                    out += self._open("text", {"type": "text", "text": ""})
                text_delta = {"type": "text_delta", "text": delta["content"]}
                out.append(
                    _event("content_block_delta", {"index": self.index, "delta": text_delta})
                )
            for call in delta.get("tool_calls") or []:
                position = call.get("index", 0)
                function = call.get("function") or {}
                if position not in self.tools:
                    block = {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "input": {},
                    }
                    out += self._open("tool", block)
                    self.tools[position] = self.index
                if function.get("arguments"):
                    json_delta = {"type": "input_json_delta", "partial_json": function["arguments"]}
                    out.append(
                        _event(
                            "content_block_delta",
                            {"index": self.tools[position], "delta": json_delta},
                        )
                    )
            if choice.get("finish_reason"):
                self.stop_reason = v.stop_reason(choice["finish_reason"])
        return out

    def finish(self) -> list[bytes]:
        if self.finished:
            return []
        self.finished = True
        out = [] if self.started else self._start({})
        out += self._close_block()
        delta = {"delta": {"stop_reason": self.stop_reason, "stop_sequence": None}}
        usage = {
            "input_tokens": self.input_tokens - self.cached_tokens,
            "cache_read_input_tokens": self.cached_tokens,
            "output_tokens": self.output_tokens,
        }
        out.append(_event("message_delta", {**delta, "usage": usage}))
        out.append(_event("message_stop", {}))
        return out


class AnthropicEventStream:
    """An internal (OpenAI-format) stream re-emitted to the client as Anthropic events."""

    def __init__(self, inner: Stream, model: str, input_estimate: int = 0) -> None:
        self.inner = inner
        self.translator = ClientEventTranslator(model, input_estimate)

    @property
    def usage(self) -> Usage | None:
        return self.inner.usage

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner.chunks():
            events = self.translator.feed(chunk)
            if events:
                yield b"".join(events)
        yield b"".join(self.translator.finish())

    async def aclose(self) -> None:
        await self.inner.aclose()
