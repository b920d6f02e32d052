"""The Anthropic Messages wire format: OpenAI-shaped chat requests in, Anthropic out and back.

Translation is pure (``to_anthropic``, ``to_openai``, ``StreamTranslator``); ``AnthropicAdapter``
does the I/O. OpenAI parameters that Anthropic has no equivalent for are refused with a 400 that
names them, never dropped silently.

    OpenAI                               Anthropic
    system messages                      system
    user/assistant content parts         text / image blocks
    assistant tool_calls                 tool_use blocks (arguments parsed to input)
    tool messages                        a user turn of tool_result blocks
    tools / tool_choice                  tools (input_schema) / tool_choice auto|any|tool|none
    max_completion_tokens | max_tokens   max_tokens (required there: DEFAULT_MAX_TOKENS if unset)
    stop                                 stop_sequences
    user                                 metadata.user_id
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from gateway.config import Deployment
from gateway.errors import InvalidRequest, UpstreamError
from gateway.providers import http
from gateway.providers.base import Reply, Usage
from gateway.providers.pool import UpstreamPool
from gateway.secrets.secret import Secret

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
PASSED = {"temperature", "top_p"}
UNSUPPORTED = {
    "n",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
    "seed",
    "audio",
    "modalities",
    "prediction",
    "web_search_options",
    "functions",
    "function_call",
}
FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}


def _unsupported(name: str) -> InvalidRequest:
    return InvalidRequest(
        f"'{name}' is not supported by this model's provider (anthropic)",
        param=name,
        code="unsupported_parameter",
    )


def _image(url: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";")[0]
        if ";base64" not in header or not media_type.startswith("image/"):
            raise InvalidRequest("image data URLs must be base64 images", param="messages")
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url") or {}
            blocks.append(_image(image.get("url", "") if isinstance(image, dict) else ""))
        else:
            raise InvalidRequest(f"content part type {kind!r} is not supported", param="messages")
    return blocks


def _text(content: Any) -> str:
    return "".join(b["text"] for b in _blocks(content) if b["type"] == "text")


def _messages(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    system: list[str] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks  # Anthropic wants alternating roles: merge
        else:
            turns.append({"role": role, "content": blocks})

    for message in messages:
        role = message["role"]
        if role in ("system", "developer"):
            system.append(_text(message.get("content")))
        elif role == "user":
            add("user", _blocks(message.get("content")))
        elif role == "assistant":
            blocks = _blocks(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function", {})
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except ValueError:
                    raise InvalidRequest(
                        "tool_calls arguments must be JSON", param="messages"
                    ) from None
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "input": arguments,
                    }
                )
            add("assistant", blocks)
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id"),
                "content": _text(message.get("content")),
            }
            add("user", [result])
        else:
            raise InvalidRequest(f"message role {role!r} is not supported", param="messages")
    return ("\n\n".join(system) or None), turns


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None and parallel is None:
        return None
    if choice in (None, "auto"):
        out: dict[str, Any] = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        out = {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": choice["function"].get("name")}
    else:
        raise InvalidRequest("unsupported tool_choice", param="tool_choice")
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def to_anthropic(body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    """An OpenAI chat-completions body as an Anthropic Messages body."""
    for name in body:
        if name in UNSUPPORTED and not (name == "n" and body[name] == 1):
            raise _unsupported(name)
    system, messages = _messages(body["messages"])
    out: dict[str, Any] = {
        "model": upstream_model,
        "messages": messages,
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    if system:
        out["system"] = system
    out.update({k: body[k] for k in PASSED if body.get(k) is not None})
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("tools"):
        out["tools"] = [
            {
                "name": t["function"]["name"],
                "description": t["function"].get("description", ""),
                "input_schema": t["function"].get("parameters") or {"type": "object"},
            }
            for t in body["tools"]
            if isinstance(t, dict) and isinstance(t.get("function"), dict)
        ]
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None:
        out["tool_choice"] = choice
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    if body.get("stream"):
        out["stream"] = True
    return out


def usage_of(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    cached = int(usage.get("cache_read_input_tokens") or 0)
    created = int(usage.get("cache_creation_input_tokens") or 0)
    return Usage(
        prompt_tokens=int(usage.get("input_tokens") or 0) + cached + created,
        completion_tokens=int(usage.get("output_tokens") or 0),
        cached_tokens=cached,
    )


def _usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def to_openai(message: dict[str, Any], model: str) -> tuple[dict[str, Any], Usage]:
    """An Anthropic Messages answer as an OpenAI chat.completion."""
    text = "".join(b.get("text", "") for b in message.get("content", []) if b.get("type") == "text")
    calls = [
        {
            "id": b.get("id"),
            "type": "function",
            "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input", {}))},
        }
        for b in message.get("content", [])
        if b.get("type") == "tool_use"
    ]
    reply: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        reply["tool_calls"] = calls
    usage = usage_of(message.get("usage"))
    completion = {
        "id": "chatcmpl-" + str(message.get("id", "")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": FINISH.get(message.get("stop_reason") or "", "stop"),
            }
        ],
        "usage": _usage_json(usage),
    }
    return completion, usage


class StreamTranslator:
    """Anthropic stream events in, OpenAI ``chat.completion.chunk`` SSE lines out."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
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
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    def feed(self, event: bytes, data: bytes) -> list[bytes]:
        if not data:
            return []
        try:
            payload = json.loads(data)
        except ValueError:
            raise UpstreamError("the upstream sent an invalid stream event") from None
        kind = payload.get("type", event.decode())
        if kind == "message_start":
            message = payload.get("message", {})
            self.id = "chatcmpl-" + str(message.get("id", ""))
            self.input = usage_of(message.get("usage"))
            self.output_tokens = int((message.get("usage") or {}).get("output_tokens") or 0)
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = payload.get("content_block", {})
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
            if delta.get("type") == "input_json_delta":
                index = self.tool_index.get(payload.get("index", 0), 0)
                call = {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
                return [self._chunk({"tool_calls": [call]})]
            return []
        if kind == "message_delta":
            usage = payload.get("usage") or {}
            self.output_tokens = int(usage.get("output_tokens") or self.output_tokens)
            reason = (payload.get("delta") or {}).get("stop_reason") or ""
            return [self._chunk({}, FINISH.get(reason, "stop"))]
        if kind == "message_stop":
            self.done = True
            out = []
            if self.include_usage:
                chunk = {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": _usage_json(self.usage),
                }
                out.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            return [*out, b"data: [DONE]\n\n"]
        if kind == "error":
            raise UpstreamError("the upstream reported an error mid-stream")
        return []  # ping, content_block_stop, and events added to the API later


class AnthropicAdapter:
    def __init__(self, deployment: Deployment, pool: UpstreamPool) -> None:
        assert deployment.base_url is not None
        self.deployment = deployment
        self._pool = pool
        self._url = f"{deployment.base_url}/v1/messages"
        self._upstream_model = deployment.upstream_model or deployment.model

    def _headers(self, key: Secret | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "anthropic-version": API_VERSION}
        if key is not None:
            headers["x-api-key"] = key.reveal()
        return headers

    def _payload(self, body: dict[str, Any]) -> bytes:
        return json.dumps(to_anthropic(body, self._upstream_model)).encode()

    async def chat(self, body: dict[str, Any], key: Secret | None) -> Reply:
        name = self.deployment.name
        payload = self._payload(body)
        data = await http.post(
            self._pool.session(self.deployment), name, self._url, payload, self._headers(key)
        )
        try:
            completion, usage = to_openai(json.loads(data), body.get("model", ""))
        except (ValueError, AttributeError, TypeError):
            raise UpstreamError(f"deployment {name} answered with invalid JSON") from None
        return Reply(json.dumps(completion).encode(), usage)

    async def chat_stream(self, body: dict[str, Any], key: Secret | None) -> AnthropicStream:
        payload = self._payload(body)
        response = await http.open_stream(
            self._pool.session(self.deployment),
            self.deployment.name,
            self._url,
            payload,
            self._headers(key),
        )
        options = body.get("stream_options") or {}
        translator = StreamTranslator(body.get("model", ""), bool(options.get("include_usage")))
        return AnthropicStream(response, self.deployment.name, translator)

    async def embeddings(self, body: dict[str, Any], key: Secret | None) -> Reply:
        raise InvalidRequest(
            f"model {body.get('model')!r} is served by anthropic, which has no embeddings API",
            param="model",
        )

    async def close(self) -> None:
        """Nothing to do: the sessions belong to the UpstreamPool."""


class AnthropicStream:
    def __init__(
        self, response: aiohttp.ClientResponse, name: str, translator: StreamTranslator
    ) -> None:
        self._response = response
        self._name = name
        self._translator = translator

    @property
    def usage(self) -> Usage | None:
        return self._translator.usage

    async def chunks(self) -> AsyncIterator[bytes]:
        async for event, data in http.sse_events(self._response, self._name):
            for chunk in self._translator.feed(event, data):
                yield chunk
        if not self._translator.done:
            raise UpstreamError(f"deployment {self._name} ended the stream early")
        self._response.release()

    async def aclose(self) -> None:
        self._response.close()
