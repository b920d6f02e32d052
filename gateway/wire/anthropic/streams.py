"""Anthropic Messages streams, translated both ways.

    UpstreamEventTranslator   Anthropic events from an upstream  ->  OpenAI chat.completion.chunk
    ClientEventTranslator     the internal OpenAI chat chunks     ->  Anthropic events to a client
    AnthropicEventStream      a Stream re-emitted to a client as Anthropic events

Pure: bytes, events or parsed chunks in, bytes out; the upstream connection is the provider
adapter's.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from gateway.config import MAX_EVENT_BYTES
from gateway.errors import UpstreamError, UpstreamTooLarge
from gateway.values import END, Stream, Usage
from gateway.wire import openai
from gateway.wire.anthropic import vocabulary as v
from gateway.wire.anthropic.native import message_id
from gateway.wire.sse import EventReader, EventTooLarge


class UpstreamEventTranslator(openai.ChunkWriter):
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
                out.append(self._usage_chunk(self.usage))
            return [*out, self._end()]
        if kind == "error":
            error = payload.get("error")
            reported = error.get("type") if isinstance(error, dict) else None
            known = reported if reported in v.UPSTREAM_ERROR_TYPES else None
            raise UpstreamError("the upstream reported an error mid-stream", code=known)
        return []  # ping, content_block_stop, and events added to the API later


_dumps = json.dumps
# What json.dumps(text) is for a str with the defaults, without its keyword checks.
_string = json.encoder.encode_basestring_ascii


def _json(value: Any) -> str:
    return _string(value) if type(value) is str else _dumps(value)


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: " + _dumps({"type": kind, **data}) + "\n\n"


# The events of every content block are written from templates: only the values that vary are
# JSON-encoded, and the text is what ``_event`` makes of the same event (the ``json.dumps``
# defaults: ", " and ": " separators, ASCII). tests/gateway/test_messages_bytes.py pins it.
TEXT_START = (
    'event: content_block_start\ndata: {"type": "content_block_start", "index": %d, '
    '"content_block": {"type": "text", "text": ""}}\n\n'
)
TEXT_DELTA = (
    'event: content_block_delta\ndata: {"type": "content_block_delta", "index": %d, '
    '"delta": {"type": "text_delta", "text": %s}}\n\n'
)
JSON_DELTA = (
    'event: content_block_delta\ndata: {"type": "content_block_delta", "index": %d, '
    '"delta": {"type": "input_json_delta", "partial_json": %s}}\n\n'
)
BLOCK_STOP = 'event: content_block_stop\ndata: {"type": "content_block_stop", "index": %d}\n\n'
MESSAGE_STOP = 'event: message_stop\ndata: {"type": "message_stop"}\n\n'
MESSAGE_START = (
    'event: message_start\ndata: {"type": "message_start", "message": {"id": %s, "type": '
    '"message", "role": "assistant", "model": %s, "content": [], "stop_reason": null, '
    '"stop_sequence": null, "usage": {"input_tokens": %s, "output_tokens": 0}}}\n\n'
)
MESSAGE_DELTA = (
    'event: message_delta\ndata: {"type": "message_delta", "delta": {"stop_reason": %s, '
    '"stop_sequence": null}, "usage": {"input_tokens": %s, "cache_read_input_tokens": %s, '
    '"output_tokens": %s}}\n\n'
)


def _number(value: Any) -> str:
    """``json.dumps(value)``, for an int without the encoder."""
    return str(value) if type(value) is int else _dumps(value)


def _text_only(chunk: Any) -> str | None:
    """The text of a chunk that is one plain text delta and nothing else (no usage)."""
    text = openai.text_delta(chunk)
    return None if text is None or type(chunk.get("usage")) is dict else text


class ClientEventTranslator:
    """Internal (OpenAI) chat chunks in, Anthropic stream events out: ``take`` reads one parsed
    chunk (``gateway.values.parsed_chunks``), ``feed`` frames and parses SSE bytes first, in
    linear time (each event is already within its deployment's ``max_event_bytes``, so the
    frame's own cap is the most that may be configured). A chunk that is not a JSON object is
    skipped; one whose fields have the wrong types ends the stream as the upstream's fault."""

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
        """The events the SSE bytes ``data`` complete, one bytes object each."""
        out: list[str] = []
        try:
            events = self.reader.feed(data)
        except EventTooLarge:
            raise _too_large() from None
        take = self.take
        for event in events:
            if event.data:
                take(openai.parsed_item(event.data), out)
        return [text.encode() for text in out]

    def take(self, chunk: Any, out: list[str]) -> None:
        """The events one parsed chunk (or ``END``) makes, appended to ``out``."""
        if self.block == "text" and (text := _text_only(chunk)) is not None:
            out.append(TEXT_DELTA % (self.index, _string(text)))  # most of a stream
            return
        if chunk is END:
            out += self.closing()
            return
        if type(chunk) is not dict:
            return
        try:
            self._chunk(chunk, out)
        except (AttributeError, TypeError, ValueError, KeyError, RecursionError):
            raise UpstreamError("the upstream sent a stream chunk of the wrong shape") from None

    def _start(self, chunk: dict[str, Any]) -> str:
        self.started = True
        return MESSAGE_START % (
            _json(message_id(chunk.get("id"))),
            _json(self.model),
            _number(self.input_estimate),
        )

    def _open(self, block: dict[str, Any] | None, out: list[str]) -> None:
        """A new content block: a text block when ``block`` is None, else that tool_use."""
        if self.block is not None:
            out.append(BLOCK_STOP % self.index)
        self.index += 1
        if block is None:
            self.block = "text"
            out.append(TEXT_START % self.index)
        else:
            self.block = "tool"
            out.append(_event("content_block_start", {"index": self.index, "content_block": block}))

    def _chunk(self, chunk: dict[str, Any], out: list[str]) -> None:
        if not self.started:
            out.append(self._start(chunk))
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
            content = delta.get("content")
            if content:
                if self.block != "text":
                    self._open(None, out)
                out.append(TEXT_DELTA % (self.index, _json(content)))
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
                    self._open(block, out)
                    self.tools[position] = self.index
                arguments = function.get("arguments")
                if arguments:
                    out.append(JSON_DELTA % (self.tools[position], _json(arguments)))
            if choice.get("finish_reason"):
                self.stop_reason = v.stop_reason(choice["finish_reason"])

    def finish(self) -> list[bytes]:
        """The events that end the message (none once they went out)."""
        return [text.encode() for text in self.closing()]

    def closing(self) -> list[str]:
        if self.finished:
            return []
        self.finished = True
        out = [] if self.started else [self._start({})]
        if self.block is not None:
            self.block = None
            out.append(BLOCK_STOP % self.index)
        out.append(
            MESSAGE_DELTA
            % (
                _json(self.stop_reason),
                _number(self.input_tokens - self.cached_tokens),
                _number(self.cached_tokens),
                _number(self.output_tokens),
            )
        )
        out.append(MESSAGE_STOP)
        return out


def _too_large() -> UpstreamTooLarge:
    message = "the upstream sent a stream event too large to translate"
    return UpstreamTooLarge(message, code="upstream_event_too_large")


class AnthropicEventStream:
    """An internal (OpenAI-format) stream re-emitted to the client as Anthropic events, from
    its chunks parsed once (by an OpenAI-format upstream stream, or here from its bytes)."""

    def __init__(self, inner: Stream, model: str, input_estimate: int = 0) -> None:
        self.inner = inner
        self.translator = ClientEventTranslator(model, input_estimate)

    @property
    def usage(self) -> Usage | None:
        return self.inner.usage

    async def chunks(self) -> AsyncIterator[bytes]:
        translator = self.translator
        take = translator.take
        try:
            async for batch in openai.chunk_batches(self.inner, translator.reader):
                out: list[str] = []
                for chunk in batch:
                    take(chunk, out)
                if out:
                    yield "".join(out).encode()
        except EventTooLarge:
            raise _too_large() from None
        yield "".join(translator.closing()).encode()

    async def aclose(self) -> None:
        await self.inner.aclose()
