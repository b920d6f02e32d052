"""The built-in ``mock`` provider: deterministic answers from the request alone, no network.

It makes the quickstart work without a provider account and gives tests a model that is always
there. Token counts are whitespace word counts; embeddings are derived from a SHA-256 of the input.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from gateway.config import Deployment
from gateway.providers.base import Provider
from gateway.providers.pool import UpstreamPool
from gateway.secrets.secret import Secret
from gateway.values import Reply, Usage
from gateway.wire import openai

EMBEDDING_DIMENSIONS = 8


def _prompt_text(body: dict[str, Any]) -> str:
    parts: list[str] = []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [p.get("text", "") for p in content if isinstance(p, dict)]
    return " ".join(parts)


def _words(text: str) -> int:
    return len(text.split())


def _completion_id(body: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return "chatcmpl-mock-" + digest[:24]


class MockAdapter:
    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def _answer(self, body: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        tools = body.get("tools")
        if tools and body.get("tool_choice") != "none":
            last = (body.get("messages") or [{}])[-1]
            if not (isinstance(last, dict) and last.get("role") == "tool"):
                function = tools[0].get("function", {}) if isinstance(tools[0], dict) else {}
                call = {
                    "id": "call_mock_1",
                    "type": "function",
                    "function": {"name": function.get("name", "tool"), "arguments": "{}"},
                }
                return "", call
        prompt = _prompt_text(body)
        return f"Mock answer from Sealgate to: {prompt[:200]}", None

    def _usage(self, body: dict[str, Any], text: str) -> Usage:
        return Usage(prompt_tokens=_words(_prompt_text(body)), completion_tokens=_words(text))

    async def chat(self, body: dict[str, Any], key: Secret | None) -> Reply:
        text, call = self._answer(body)
        usage = self._usage(body, text)
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if call:
            message["tool_calls"] = [call]
        choices = [
            {
                "index": i,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if call else "stop",
            }
            for i in range(int(body.get("n") or 1))
        ]
        reply = {
            "id": _completion_id(body),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.deployment.model),
            "choices": choices,
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
        }
        return Reply(json.dumps(reply).encode(), usage, reply)

    async def chat_stream(self, body: dict[str, Any], key: Secret | None) -> MockStream:
        text, call = self._answer(body)
        return MockStream(self, body, text, call)

    async def embeddings(self, body: dict[str, Any], key: Secret | None) -> Reply:
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = []
        for index, item in enumerate(items):
            digest = hashlib.sha256(str(item).encode()).digest()
            vector = [round(b / 255.0 - 0.5, 6) for b in digest[:EMBEDDING_DIMENSIONS]]
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = sum(_words(str(i)) for i in items)
        reply = {
            "object": "list",
            "data": data,
            "model": body.get("model", self.deployment.model),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return Reply(json.dumps(reply).encode(), Usage(prompt_tokens=tokens))

    async def close(self) -> None:
        return None


class MockStream:
    def __init__(
        self, adapter: MockAdapter, body: dict[str, Any], text: str, call: dict[str, Any] | None
    ) -> None:
        self._body = body
        self._text = text
        self._call = call
        self.usage: Usage | None = adapter._usage(body, text)
        self._model = body.get("model", adapter.deployment.model)

    def _event(self, delta: dict[str, Any], finish: str | None, usage: Any = None) -> bytes:
        completion_id, created = _completion_id(self._body), int(time.time())
        if usage is None:
            return openai.chunk(completion_id, created, self._model, delta, finish)
        chunk = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": self._model,
            "choices": [],
            "usage": usage,
        }
        return openai.event(chunk)

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self._event({"role": "assistant", "content": ""}, None)
        if self._call:
            yield self._event({"tool_calls": [{"index": 0, **self._call}]}, None)
            yield self._event({}, "tool_calls")
        else:
            for word in self._text.split(" "):
                yield self._event({"content": word + " "}, None)
            yield self._event({}, "stop")
        options = self._body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") and self.usage:
            u = self.usage
            usage = {
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "total_tokens": u.total_tokens,
            }
            yield self._event({}, None, usage)
        yield openai.DONE

    async def aclose(self) -> None:
        return None


def _adapter(deployment: Deployment, pool: UpstreamPool) -> MockAdapter:
    return MockAdapter(deployment)


PROVIDER = Provider("mock", _adapter, needs_base_url=False, needs_credential=False)
