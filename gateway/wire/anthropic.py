"""The Anthropic-compatible API: ``POST /v1/messages`` in Anthropic's wire format, served by any
deployment. Requests are translated to the internal OpenAI shape, routed like every other call,
and the answers (streams too) translated back. Pure functions; hotpath.py does the I/O.

Like the OpenAI-compatible API it is deny by default: a field the translation does not know is
refused, and so is every field that would steer the upstream.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.api.validation import check_fields
from gateway.errors import GatewayError, InvalidRequest
from gateway.providers.base import Usage

FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stop_sequences",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "metadata",
        "stream",
    }
)
STOP_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
ERROR_TYPE = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "rate_limit_error": "rate_limit_error",
}


def error_body(exc: GatewayError) -> dict[str, Any]:
    kind = ERROR_TYPE.get(exc.type, "overloaded_error" if exc.http_status == 503 else "api_error")
    if exc.http_status == 413:
        kind = "request_too_large"
    return {"type": "error", "error": {"type": kind, "message": exc.message}}


def _text_of(blocks: Any) -> str:
    if isinstance(blocks, str):
        return blocks
    if isinstance(blocks, list):
        return "".join(
            b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _part(block: dict[str, Any]) -> dict[str, Any]:
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": block.get("text", "")}
    if kind == "image":
        source = block.get("source") or {}
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type')};base64,{source.get('data')}"
        elif source.get("type") == "url":
            url = str(source.get("url"))
        else:
            raise InvalidRequest("image source must be base64 or url", param="messages")
        return {"type": "image_url", "image_url": {"url": url}}
    raise InvalidRequest(f"content block type {kind!r} is not supported", param="messages")


def _messages(turns: Any) -> list[dict[str, Any]]:
    if not isinstance(turns, list) or not turns:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    out: list[dict[str, Any]] = []
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict) or turn.get("role") not in ("user", "assistant"):
            raise InvalidRequest(
                f"messages[{index}] needs role 'user' or 'assistant'", param=f"messages[{index}]"
            )
        content = turn.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list):
            raise InvalidRequest(
                f"messages[{index}].content must be a string or an array", param="messages"
            )
        if turn["role"] == "assistant":
            text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
            calls = [
                {
                    "id": b.get("id"),
                    "type": "function",
                    "function": {
                        "name": b.get("name"),
                        "arguments": json.dumps(b.get("input", {})),
                    },
                }
                for b in blocks
                if b.get("type") == "tool_use"
            ]
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                message["tool_calls"] = calls
            out.append(message)
            continue
        parts = []
        for block in blocks:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": block.get("tool_use_id"),
                        "content": _text_of(block.get("content")),
                    }
                )
            elif isinstance(block, dict):
                parts.append(_part(block))
        if parts:
            out.append({"role": "user", "content": parts})
    return out


def _tool_choice(choice: Any) -> tuple[Any, bool | None]:
    if not isinstance(choice, dict):
        raise InvalidRequest("tool_choice must be an object", param="tool_choice")
    parallel = False if choice.get("disable_parallel_tool_use") else None
    kind = choice.get("type")
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}, parallel
    raise InvalidRequest(f"tool_choice type {kind!r} is not supported", param="tool_choice")


def to_internal(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages request as the internal (OpenAI chat) body."""
    check_fields(body, FIELDS)
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequest(
            "'max_tokens' is required and must be a positive integer", param="max_tokens"
        )
    messages = _messages(body.get("messages"))
    system = _text_of(body.get("system"))
    if system:
        messages.insert(0, {"role": "system", "content": system})
    out: dict[str, Any] = {
        "model": body.get("model"),
        "messages": messages,
        "max_tokens": max_tokens,
    }
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise InvalidRequest("'tools' must be an array of objects", param="tools")
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name"),
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema") or {"type": "object"},
                },
            }
            for t in tools
        ]
    if body.get("tool_choice") is not None:
        out["tool_choice"], parallel = _tool_choice(body["tool_choice"])
        if parallel is not None:
            out["parallel_tool_calls"] = parallel
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def to_message(completion: dict[str, Any], model: str) -> dict[str, Any]:
    """An internal (OpenAI) chat.completion as an Anthropic Messages answer."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError:
            arguments = {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": arguments,
            }
        )
    usage = Usage.from_openai(completion.get("usage")) or Usage()
    return {
        "id": "msg_" + str(completion.get("id", "")).removeprefix("chatcmpl-"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASON.get(choice.get("finish_reason") or "", "end_turn"),
        "stop_sequence": None,
        "usage": {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens},
    }


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: ".encode() + json.dumps({"type": kind, **data}).encode() + b"\n\n"


class EventTranslator:
    """Internal (OpenAI) SSE bytes in, Anthropic stream events out."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.buffer = b""
        self.started = False
        self.block: str | None = None  # "text" or "tool" while a content block is open
        self.index = -1
        self.tools: dict[int, int] = {}  # OpenAI tool_calls index -> Anthropic block index
        self.stop_reason = "end_turn"
        self.input_tokens = 0
        self.output_tokens = 0
        self.finished = False

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        out: list[bytes] = []
        while (cut := self.buffer.find(b"\n\n")) >= 0:
            raw, self.buffer = self.buffer[:cut], self.buffer[cut + 2 :]
            for line in raw.split(b"\n"):
                if line.startswith(b"data:"):
                    out += self._data(line[5:].strip())
        return out

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        self.started = True
        message: dict[str, Any] = {
            "id": "msg_" + str(chunk.get("id", "")).removeprefix("chatcmpl-"),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
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
        except ValueError:
            return []
        out = [] if self.started else self._start(chunk)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.output_tokens = int(usage.get("completion_tokens") or 0)
            self.input_tokens = int(usage.get("prompt_tokens") or 0)
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
                self.stop_reason = STOP_REASON.get(choice["finish_reason"], "end_turn")
        return out

    def finish(self) -> list[bytes]:
        if self.finished:
            return []
        self.finished = True
        out = [] if self.started else self._start({})
        out += self._close_block()
        delta = {"delta": {"stop_reason": self.stop_reason, "stop_sequence": None}}
        out.append(
            _event("message_delta", {**delta, "usage": {"output_tokens": self.output_tokens}})
        )
        out.append(_event("message_stop", {}))
        return out
