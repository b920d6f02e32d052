"""The internal chat stream (``chat.completion.chunk`` events) re-emitted as the Responses
event sequence."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from gateway.config import MAX_EVENT_BYTES
from gateway.errors import UpstreamError, UpstreamTooLarge
from gateway.values import Stream, Usage
from gateway.wire.responses.answers import call_item, envelope, message_item, new_id, usage_json
from gateway.wire.responses.requests import FINISH, Tools
from gateway.wire.sse import EventReader, EventTooLarge

TEXT_DELTA = (
    'event: response.output_text.delta\ndata: {"type": "response.output_text.delta", '
    '"item_id": "%s", "output_index": %d, "content_index": 0, "delta": %s, "logprobs": [], '
    '"sequence_number": %d}\n\n'
)


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
        self._text: dict[str, Any] | None = None  # the message item being written
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool_calls index -> item
        self._finish: str | None = None
        self.completed: dict[str, Any] | None = None

    @property
    def usage(self) -> Usage | None:
        return self._inner.usage

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        out = sse(kind, {**data, "sequence_number": self._sequence})
        self._sequence += 1
        return out

    def _snapshot(self, status: str) -> dict[str, Any]:
        answer = envelope(self._id, self._body, str(self._body["model"]), self._created, status)
        answer["output"] = self._output
        return answer

    async def chunks(self) -> AsyncIterator[bytes]:
        start = self._snapshot("in_progress")
        yield self._event("response.created", {"response": start}) + self._event(
            "response.in_progress", {"response": start}
        )
        async for piece in self._inner.chunks():
            try:
                events = self._reader.feed(piece)
            except EventTooLarge:
                raise UpstreamTooLarge("a stream event is larger than the gateway's cap") from None
            out: list[bytes] = []
            for event in events:
                out += self._feed(event.data)
            if out:
                yield b"".join(out)
        yield b"".join(self._finish_all())

    def _feed(self, data: bytes) -> list[bytes]:
        if not data or data == b"[DONE]":
            return []
        try:
            chunk = json.loads(data)
            out: list[bytes] = []
            for choice in chunk.get("choices") or []:
                out += self._choice(choice)
            return out
        except (ValueError, AttributeError, TypeError, KeyError, RecursionError):
            raise UpstreamError("the upstream sent an invalid stream event") from None

    def _choice(self, choice: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        delta = choice.get("delta") or {}
        text = delta.get("content")
        if isinstance(text, str) and text:
            if self._text is None:
                item = message_item("")
                item["status"] = "in_progress"
                item["content"] = []
                self._text = {"item": item, "index": len(self._output), "text": []}
                self._output.append(item)
                out.append(self._added(item, self._text["index"]))
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                out.append(
                    self._event(
                        "response.content_part.added",
                        {**self._where(self._text), "content_index": 0, "part": part},
                    )
                )
            self._text["text"].append(text)
            out.append(self._text_delta(text))
        for call in delta.get("tool_calls") or []:
            out += self._call_delta(call)
        if choice.get("finish_reason"):
            self._finish = choice["finish_reason"]
        return out

    def _text_delta(self, text: str) -> bytes:
        """A ``response.output_text.delta`` event, the one a stream is mostly made of: written
        from a template (only the text is JSON-encoded), the same bytes ``_event`` would make."""
        assert self._text is not None
        state = self._text
        made = TEXT_DELTA % (state["item"]["id"], state["index"], json.dumps(text), self._sequence)
        self._sequence += 1
        return made.encode()

    def _where(self, state: dict[str, Any]) -> dict[str, Any]:
        return {"item_id": state["item"]["id"], "output_index": state["index"]}

    def _added(self, item: dict[str, Any], index: int) -> bytes:
        return self._event("response.output_item.added", {"output_index": index, "item": item})

    def _call_delta(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
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
            out.append(self._added(item, state["index"]))
        piece = function.get("arguments")
        if isinstance(piece, str) and piece:
            state["arguments"].append(piece)
            if state["item"]["type"] == "function_call":
                out.append(
                    self._event(
                        "response.function_call_arguments.delta",
                        {**self._where(state), "delta": piece},
                    )
                )
        return out

    def _finish_all(self) -> list[bytes]:
        out: list[bytes] = []
        if self._text is not None:
            state = self._text
            text = "".join(state["text"])
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            where = {**self._where(state), "content_index": 0}
            out.append(
                self._event("response.output_text.done", {**where, "text": text, "logprobs": []})
            )
            out.append(self._event("response.content_part.done", {**where, "part": part}))
            state["item"].update(status="completed", content=[part])
            out.append(self._done(state))
        for state in self._calls.values():
            arguments = "".join(state["arguments"])
            item = state["item"]
            if item["type"] == "function_call":
                item["arguments"] = arguments
                out.append(
                    self._event(
                        "response.function_call_arguments.done",
                        {**self._where(state), "arguments": arguments},
                    )
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
            out.append(self._done(state))
        reason = FINISH.get(self._finish) if isinstance(self._finish, str) else None
        final = self._snapshot("incomplete" if reason else "completed")
        if reason:
            final["incomplete_details"] = {"reason": reason}
        final["usage"] = usage_json(self._inner.usage)
        self.completed = final
        kind = "response.incomplete" if reason else "response.completed"
        out.append(self._event(kind, {"response": final}))
        return out

    def _done(self, state: dict[str, Any]) -> bytes:
        return self._event(
            "response.output_item.done", {"output_index": state["index"], "item": state["item"]}
        )

    async def aclose(self) -> None:
        await self._inner.aclose()
