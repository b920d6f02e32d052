"""The internal chat stream (``chat.completion.chunk`` events) re-emitted as the Responses
event sequence."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from gateway.config import MAX_EVENT_BYTES
from gateway.errors import UpstreamError, UpstreamTooLarge
from gateway.values import END, Stream, Usage
from gateway.wire.openai import chunk_batches, text_delta
from gateway.wire.responses.answers import call_item, envelope, message_item, new_id, usage_json
from gateway.wire.responses.requests import FINISH, Tools
from gateway.wire.sse import EventReader, EventTooLarge

# Every event is written from a template: only the values that vary are JSON-encoded, and the
# bytes are those ``sse(kind, {**data, "sequence_number": n})`` makes (the ``json.dumps``
# defaults: ", " and ": " separators, ASCII). An id is one of ``new_id``'s (hex, nothing to
# escape); tests/gateway/test_responses_bytes.py pins the result.
TEXT_DELTA_ITEM = (
    'event: response.output_text.delta\ndata: {"type": "response.output_text.delta", '
    '"item_id": "%s", "output_index": %d, '
)
TEXT_DELTA_REST = '"content_index": 0, "delta": %s, "logprobs": [], "sequence_number": %d}\n\n'
TEXT_DELTA = TEXT_DELTA_ITEM + TEXT_DELTA_REST
RESPONSE = 'event: %s\ndata: {"type": "%s", "response": %s, "sequence_number": %d}\n\n'
ITEM = 'event: %s\ndata: {"type": "%s", "output_index": %d, "item": %s, "sequence_number": %d}\n\n'
PART_ADDED = (
    'event: response.content_part.added\ndata: {"type": "response.content_part.added", '
    '"item_id": "%s", "output_index": %d, "content_index": 0, "part": {"type": "output_text", '
    '"text": "", "annotations": [], "logprobs": []}, "sequence_number": %d}\n\n'
)
TEXT_DONE = (
    'event: response.output_text.done\ndata: {"type": "response.output_text.done", '
    '"item_id": "%s", "output_index": %d, "content_index": 0, "text": %s, "logprobs": [], '
    '"sequence_number": %d}\n\n'
    'event: response.content_part.done\ndata: {"type": "response.content_part.done", '
    '"item_id": "%s", "output_index": %d, "content_index": 0, "part": {"type": "output_text", '
    '"text": %s, "annotations": [], "logprobs": []}, "sequence_number": %d}\n\n'
)
ARGUMENTS_DELTA = (
    'event: response.function_call_arguments.delta\ndata: {"type": '
    '"response.function_call_arguments.delta", "item_id": "%s", "output_index": %d, '
    '"delta": %s, "sequence_number": %d}\n\n'
)
ARGUMENTS_DONE = (
    'event: response.function_call_arguments.done\ndata: {"type": '
    '"response.function_call_arguments.done", "item_id": "%s", "output_index": %d, '
    '"arguments": %s, "sequence_number": %d}\n\n'
)
# A message item's JSON (``message_item``, as the stream writes it: in progress with no content,
# then completed with its one text part); its id is one of ``new_id``'s.
MESSAGE_OPEN = (
    '{"type": "message", "id": "%s", "status": "in_progress", "role": "assistant", "content": []}'
)
MESSAGE_DONE = (
    '{"type": "message", "id": "%s", "status": "completed", "role": "assistant", "content": '
    '[{"type": "output_text", "text": %s, "annotations": [], "logprobs": []}]}'
)
_dumps = json.dumps
# What json.dumps(text) is for a str with the defaults, without its keyword checks.
_string = json.encoder.encode_basestring_ascii
# Stand-ins for the snapshot's fields that change between response.created and the final event
# (json: "\u0000s" and so on): the snapshot is dumped once with them, and each event's JSON is
# the parts between them joined with that event's values.
_MARKS = {"status": "\x00s", "incomplete_details": "\x00i", "output": "\x00o", "usage": "\x00u"}
_MARKS_JSON = [_string(mark) for mark in _MARKS.values()]


USAGE = (
    '{"input_tokens": %d, "input_tokens_details": {"cached_tokens": %d}, "output_tokens": %d, '
    '"output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": %d}'
)


def _parts(snapshot: str) -> list[str] | None:
    """``snapshot`` (dumped with ``_MARKS``) cut at each mark, None when a mark is not there
    exactly once (the request echoed one)."""
    parts: list[str] = []
    rest = snapshot
    for mark in _MARKS_JSON:
        head, found, rest = rest.partition(mark)
        if not found or mark in rest:  # not there, twice, or not in the envelope's order
            return None
        parts.append(head)
    parts.append(rest)
    return parts


def _usage_json(usage: Usage | None) -> str:
    """``json.dumps(usage_json(usage))``."""
    if usage is None:
        return "null"
    prompt, cached, completion = usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens
    if type(prompt) is int and type(cached) is int and type(completion) is int:
        return USAGE % (prompt, cached, completion, prompt + completion)
    return _dumps(usage_json(usage))


def sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: ".encode() + json.dumps({"type": kind, **data}).encode() + b"\n\n"


class ResponsesEventStream:
    """The internal chat stream (``chat.completion.chunk`` events) re-emitted to a client as
    the Responses event sequence: ``response.created``, ``response.in_progress``, each output
    item's ``added`` / deltas / ``done``, then ``response.completed`` (or ``.incomplete``) with
    usage. ``completed`` holds the final Responses object once the stream has ended."""

    def __init__(self, inner: Stream, body: dict[str, Any], tools: Tools, response_id: str) -> None:
        self._inner = inner
        self._body = body
        self._tools = tools
        self._id = response_id
        self._reader = EventReader(MAX_EVENT_BYTES)
        self._sequence = 0
        self._created = int(time.time())
        self._output: list[dict[str, Any]] = []
        self._done_json: dict[int, str] = {}  # output index -> the item's JSON when done
        self._envelope: dict[str, Any] | None = None
        self._parts: list[str] | None = None  # the snapshot's JSON cut at ``_MARKS``
        self._text: dict[str, Any] | None = None  # the message item being written
        # The message item's text-delta event, with its text ("%s") and number ("%d") to fill.
        self._delta_event = ""
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool_calls index -> item
        self._finish: str | None = None
        self.completed: dict[str, Any] | None = None

    @property
    def usage(self) -> Usage | None:
        return self._inner.usage

    def _next(self) -> int:
        sequence = self._sequence
        self._sequence = sequence + 1
        return sequence

    def _response(self, kind: str, encoded: str) -> str:
        return RESPONSE % (kind, kind, encoded, self._next())

    def _item(self, kind: str, index: int, encoded: str) -> str:
        return ITEM % (kind, kind, index, encoded, self._next())

    def _snapshot(self, status: str) -> dict[str, Any]:
        """The Responses object so far (``envelope`` made once, copied for each use)."""
        if self._envelope is None:
            body = self._body
            self._envelope = envelope(self._id, body, str(body["model"]), self._created, "")
        answer = dict(self._envelope)
        answer["status"] = status
        answer["output"] = self._output
        return answer

    def _started(self) -> str:
        """The snapshot's JSON in progress; ``_parts`` set for the final one."""
        marked = self._snapshot("")
        marked.update(_MARKS)
        parts = self._parts = _parts(_dumps(marked))
        if parts is None:
            return _dumps(self._snapshot("in_progress"))
        return (
            parts[0]
            + '"in_progress"'
            + parts[1]
            + "null"
            + parts[2]
            + "[]"
            + parts[3]
            + ("null" + parts[4])
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        start = self._started()
        yield (
            self._response("response.created", start)
            + self._response("response.in_progress", start)
        ).encode()
        feed = self._feed
        try:
            # parsed once: by an OpenAI-format upstream stream, or here from the chat bytes
            async for batch in chunk_batches(self._inner, self._reader):
                out: list[str] = []
                for chunk in batch:
                    state = self._text  # a plain text delta once the message item is open
                    if state is None or (text := text_delta(chunk)) is None:
                        feed(chunk, out)
                        continue
                    state["text"].append(text)
                    sequence = self._sequence
                    self._sequence = sequence + 1
                    out.append(self._delta_event % (_string(text), sequence))
                if out:
                    yield "".join(out).encode()
        except EventTooLarge:
            raise UpstreamTooLarge("a stream event is larger than the gateway's cap") from None
        yield "".join(self._finish_all()).encode()

    def _feed(self, chunk: Any, out: list[str]) -> None:
        if chunk is END:
            return
        try:  # None (not JSON) and any chunk of the wrong shape fail here
            for choice in chunk.get("choices") or []:
                self._choice(choice, out)
        except (ValueError, AttributeError, TypeError, KeyError, RecursionError):
            raise UpstreamError("the upstream sent an invalid stream event") from None

    def _choice(self, choice: dict[str, Any], out: list[str]) -> None:
        delta = choice.get("delta") or {}
        text = delta.get("content")
        if isinstance(text, str) and text:
            if self._text is None:
                item = message_item("")
                item["status"] = "in_progress"
                item["content"] = []
                index = len(self._output)
                self._text = {"item": item, "index": index, "text": []}
                self._output.append(item)
                item_id = item["id"]
                added = MESSAGE_OPEN % item_id
                out.append(self._item("response.output_item.added", index, added))
                out.append(PART_ADDED % (item_id, index, self._next()))
                head = TEXT_DELTA_ITEM % (item_id, index)
                self._delta_event = head.replace("%", "%%") + TEXT_DELTA_REST
            self._text["text"].append(text)
            out.append(self._delta_event % (_string(text), self._next()))
        for call in delta.get("tool_calls") or []:
            self._call_delta(call, out)
        if choice.get("finish_reason"):
            self._finish = choice["finish_reason"]

    def _call_delta(self, call: dict[str, Any], out: list[str]) -> None:
        index = call.get("index", 0)
        function = call.get("function") or {}
        state = self._calls.get(index)
        if state is None:
            name = function.get("name") or ""
            kind = "custom_tool_call" if name in self._tools.custom else "function_call"
            own, space = self._tools.item(name)
            item: dict[str, Any] = {
                "type": kind,
                "id": new_id("ctc" if kind == "custom_tool_call" else "fc"),
                "call_id": call.get("id") or new_id("call"),
                "name": own,
                "status": "in_progress",
            }
            if space is not None:
                item["namespace"] = space
            item["input" if kind == "custom_tool_call" else "arguments"] = ""
            state = {"item": item, "index": len(self._output), "arguments": []}
            self._calls[index] = state
            self._output.append(item)
            out.append(self._item("response.output_item.added", state["index"], _dumps(item)))
        piece = function.get("arguments")
        if isinstance(piece, str) and piece:
            state["arguments"].append(piece)
            item = state["item"]
            if item["type"] == "function_call":
                out.append(
                    ARGUMENTS_DELTA % (item["id"], state["index"], _string(piece), self._next())
                )

    def _finish_all(self) -> list[str]:
        out: list[str] = []
        if self._text is not None:
            state = self._text
            text = "".join(state["text"])
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            item_id, index, encoded = state["item"]["id"], state["index"], _string(text)
            text_done, part_done = self._next(), self._next()
            out.append(
                TEXT_DONE % (item_id, index, encoded, text_done, item_id, index, encoded, part_done)
            )
            state["item"].update(status="completed", content=[part])
            out.append(self._done(index, MESSAGE_DONE % (item_id, encoded)))
        for state in self._calls.values():
            arguments = "".join(state["arguments"])
            item = state["item"]
            if item["type"] == "function_call":
                item["arguments"] = arguments
                out.append(
                    ARGUMENTS_DONE % (item["id"], state["index"], _string(arguments), self._next())
                )
            else:
                done = call_item(
                    {
                        "id": item["call_id"],
                        "function": {"name": item["name"], "arguments": arguments},
                    },
                    self._tools,
                )
                item["input"] = done["input"]
            item["status"] = "completed"
            out.append(self._done(state["index"], _dumps(item)))
        reason = FINISH.get(self._finish) if isinstance(self._finish, str) else None
        status = "incomplete" if reason else "completed"
        final = self._snapshot(status)
        if reason:
            final["incomplete_details"] = {"reason": reason}
        usage = self._inner.usage
        final["usage"] = usage_json(usage)
        self.completed = final
        kind = "response.incomplete" if reason else "response.completed"
        out.append(self._response(kind, self._final_json(final, usage)))
        return out

    def _final_json(self, final: dict[str, Any], usage: Usage | None) -> str:
        """``json.dumps(final)``, from the snapshot's parts and each item's JSON when done."""
        parts = self._parts
        if parts is None or len(self._done_json) != len(self._output):
            return _dumps(final)
        output = ", ".join([self._done_json[index] for index in range(len(self._output))])
        incomplete = final["incomplete_details"]
        return (
            parts[0]
            + _string(final["status"])
            + parts[1]
            + ("null" if incomplete is None else _dumps(incomplete))
            + parts[2]
            + "["
            + output
            + "]"
            + parts[3]
            + _usage_json(usage)
            + parts[4]
        )

    def _done(self, index: int, encoded: str) -> str:
        self._done_json[index] = encoded
        return self._item("response.output_item.done", index, encoded)

    async def aclose(self) -> None:
        await self._inner.aclose()
