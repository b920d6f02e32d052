"""AWS Bedrock's Converse API, translated to and from the OpenAI shape. Pure functions, no I/O.

    request_to_converse         an OpenAI chat body       ->  a Converse / ConverseStream body
    completion_from_converse    a Converse answer         ->  an OpenAI chat completion, Usage
    ConverseStreamTranslator    ConverseStream events     ->  OpenAI chat.completion.chunk SSE
    embeddings_request / embeddings_from   Titan and Cohere embeddings on InvokeModel

Converse names the same things OpenAI does with other words: ``system`` blocks, ``text`` /
``image`` / ``toolUse`` / ``toolResult`` content blocks, ``inferenceConfig`` (``maxTokens``,
``temperature``, ``topP``, ``stopSequences``), ``toolConfig``. An OpenAI parameter Converse has
no equivalent for is refused with a 400 that names it, never dropped. A guardrail or content
filter stop (``guardrail_intervened``, ``content_filtered``) is the finish reason
``content_filter`` (docs/providers.md). Usage: Converse counts cache reads and writes apart
from ``inputTokens``; here they count as prompt tokens (as the Anthropic translation does), with
the reads as ``cached_tokens`` and the writes as ``cache_write_tokens``.
"""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from typing import Any

from gateway.errors import InvalidRequest, UpstreamError
from gateway.values import Usage
from gateway.wire import openai
from gateway.wire.openai import count_of

PROVIDER = "bedrock"
IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "webp"})
# OpenAI parameters Converse has no equivalent for (``n`` only when it is not 1).
UNSUPPORTED = frozenset(
    {
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
)
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def unsupported(name: str, provider: str = PROVIDER) -> InvalidRequest:
    return InvalidRequest(
        f"'{name}' is not supported by this model's provider ({provider})",
        param=name,
        code="unsupported_parameter",
    )


# -- egress: an OpenAI chat body as a Converse body ---------------------------------------------
def _image(url: Any) -> dict[str, Any]:
    if not isinstance(url, str) or not url.startswith("data:"):
        raise InvalidRequest(
            "this model's provider (bedrock) takes images as base64 data URLs only "
            "(the gateway does not fetch image URLs)",
            param="messages",
        )
    header, _, data = url.partition(",")
    kind = header[5:].split(";")[0]
    fmt = kind.removeprefix("image/")
    if ";base64" not in header or not kind.startswith("image/") or fmt not in IMAGE_FORMATS:
        raise InvalidRequest(
            "image data URLs must be base64 png, jpeg, gif or webp images", param="messages"
        )
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def _blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url")
            blocks.append(_image(image.get("url") if isinstance(image, dict) else None))
        else:
            raise InvalidRequest(f"content part type {kind!r} is not supported", param="messages")
    return blocks


def _text(content: Any) -> str:
    return "".join(b["text"] for b in _blocks(content) if "text" in b)


def _tool_use(call: Any) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        raise InvalidRequest("a tool call needs a function", param="messages")
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except ValueError:
        raise InvalidRequest("a tool call's arguments are not JSON", param="messages") from None
    return {
        "toolUse": {"toolUseId": call.get("id"), "name": function.get("name"), "input": arguments}
    }


def _turns(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks  # Converse wants alternating roles: merge
        else:
            turns.append({"role": role, "content": blocks})

    for message in messages:
        role = message["role"]
        if role in ("system", "developer"):
            system.append({"text": _text(message.get("content"))})
        elif role == "user":
            add("user", _blocks(message.get("content")))
        elif role == "assistant":
            blocks = _blocks(message.get("content"))
            blocks += [_tool_use(c) for c in message.get("tool_calls") or []]
            add("assistant", blocks)
        elif role == "tool":
            result = {
                "toolResult": {
                    "toolUseId": message.get("tool_call_id"),
                    "content": [{"text": _text(message.get("content"))}],
                }
            }
            add("user", [result])
        else:
            raise InvalidRequest(f"message role {role!r} is not supported", param="messages")
    return system, turns


def _tool_config(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not tools:
        return None
    specs = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest("each tool needs a function with a name", param="tools")
        spec: dict[str, Any] = {
            "name": function["name"],
            "inputSchema": {"json": function.get("parameters") or {"type": "object"}},
        }
        if isinstance(function.get("description"), str):
            spec["description"] = function["description"]
        specs.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": specs}
    if choice in (None, "auto"):
        pass
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "none":
        return None  # Converse has no "none": the tools are not offered
    elif isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        config["toolChoice"] = {"tool": {"name": choice["function"]["name"]}}
    else:
        raise InvalidRequest("tool_choice is not one this provider takes", param="tool_choice")
    return config


def request_to_converse(body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat-completions body as a Converse body (the model is in the URL)."""
    for name in body:
        if name in UNSUPPORTED and not (name == "n" and body[name] == 1):
            raise unsupported(name)
    system, messages = _turns(body["messages"])
    if not messages:
        raise InvalidRequest(
            "this model's provider (bedrock) needs a user or assistant message", param="messages"
        )
    out: dict[str, Any] = {"messages": messages}
    if system:
        out["system"] = system
    inference: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        inference["maxTokens"] = max_tokens
    if body.get("temperature") is not None:
        inference["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        inference["topP"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if inference:
        out["inferenceConfig"] = inference
    tools = _tool_config(body)
    if tools is not None:
        out["toolConfig"] = tools
    return out


# -- ingress: a Converse answer as an OpenAI completion -----------------------------------------
def finish_reason(stop_reason: Any) -> str:
    return STOP_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def usage_of(usage: Any) -> Usage:
    """Converse ``usage``: cache reads and writes come on top of ``inputTokens``."""
    if not isinstance(usage, dict):
        return Usage()
    read = count_of(usage.get("cacheReadInputTokens"))
    written = count_of(usage.get("cacheWriteInputTokens"))
    return Usage(
        prompt_tokens=count_of(usage.get("inputTokens")) + read + written,
        completion_tokens=count_of(usage.get("outputTokens")),
        cached_tokens=read,
        cache_write_tokens=written,
    )


def _tool_call(use: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": use.get("toolUseId"),
        "type": "function",
        "function": {"name": use.get("name"), "arguments": json.dumps(use.get("input", {}))},
    }


def completion_from_converse(answer: dict[str, Any], model: str) -> tuple[dict[str, Any], Usage]:
    blocks = answer["output"]["message"]["content"]
    text = "".join(b["text"] for b in blocks if isinstance(b.get("text"), str))
    calls = [_tool_call(b["toolUse"]) for b in blocks if isinstance(b.get("toolUse"), dict)]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    usage = usage_of(answer.get("usage"))
    completion = {
        "id": "chatcmpl-" + uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason(answer.get("stopReason")),
            }
        ],
        "usage": openai.usage_json(usage),
    }
    return completion, usage


# -- streams: ConverseStream events as OpenAI chunks --------------------------------------------
class ConverseStreamTranslator(openai.ChunkWriter):
    """ConverseStream events (already decoded from the event-stream framing) in, OpenAI
    ``chat.completion.chunk`` SSE out. The stream is done when ``metadata`` (usage) came after
    ``messageStop``; the ``[DONE]`` marker goes out then."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self.id = "chatcmpl-" + uuid.uuid4().hex
        self.created = int(time.time())
        self.usage: Usage | None = None
        self.tool_index: dict[int, int] = {}  # Converse block index -> OpenAI tool_calls index
        self.finish: str | None = None
        self.done = False

    def feed(self, event_type: str, payload: bytes) -> list[bytes]:
        try:
            return self._translate(event_type, openai.loads(payload))
        except (ValueError, AttributeError, TypeError, KeyError, RecursionError):
            raise UpstreamError("the upstream sent an invalid stream event") from None

    def _translate(self, kind: str, data: dict[str, Any]) -> list[bytes]:
        if kind == "messageStart":
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "contentBlockStart":
            use = data["start"].get("toolUse")
            if not isinstance(use, dict):
                return []
            index = self.tool_index.setdefault(data["contentBlockIndex"], len(self.tool_index))
            call = {
                "index": index,
                "id": use["toolUseId"],
                "type": "function",
                "function": {"name": use["name"], "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if kind == "contentBlockDelta":
            delta = data["delta"]
            if isinstance(delta.get("text"), str):
                return [self._chunk({"content": delta["text"]})]
            use = delta.get("toolUse")
            if isinstance(use, dict):
                index = self.tool_index[data["contentBlockIndex"]]
                part = {"index": index, "function": {"arguments": str(use.get("input", ""))}}
                return [self._chunk({"tool_calls": [part]})]
            return []  # reasoning and citation deltas have no OpenAI chunk
        if kind == "messageStop":
            self.finish = finish_reason(data.get("stopReason"))
            return [self._chunk({}, self.finish)]
        if kind == "metadata":
            self.usage = usage_of(data.get("usage"))
            if self.finish is None:
                return []
            self.done = True
            out = []
            if self.include_usage:
                out.append(self._usage_chunk(self.usage))
            return [*out, self._end()]
        return []  # contentBlockStop, and event types added later


# -- embeddings on InvokeModel: Titan and Cohere ------------------------------------------------
def embedding_family(upstream_model: str) -> str:
    """``titan`` or ``cohere`` (an inference profile's ``us.`` / ``eu.`` prefix ignored)."""
    name = upstream_model.rsplit("/", 1)[-1]
    for family in ("titan", "cohere"):
        if f"amazon.{family}" in name or name.startswith(f"{family}.") or f".{family}." in name:
            return family
    if "titan-embed" in name:
        return "titan"
    raise InvalidRequest(
        f"bedrock model {upstream_model!r} is not a Titan or Cohere embeddings model",
        param="model",
    )


def embedding_inputs(body: dict[str, Any]) -> list[str]:
    given = body.get("input")
    inputs = [given] if isinstance(given, str) else given
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise InvalidRequest(
            "this model's provider (bedrock) embeds text: input must be a string or a list of "
            "strings",
            param="input",
        )
    return inputs


def titan_request(text: str, body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"inputText": text}
    if body.get("dimensions") is not None:
        out["dimensions"] = body["dimensions"]
    return out


def cohere_request(texts: list[str], body: dict[str, Any]) -> dict[str, Any]:
    if body.get("dimensions") is not None:
        raise unsupported("dimensions")
    return {"texts": texts, "input_type": body.get("input_type") or "search_document"}


def _base64(vector: list[Any]) -> str:
    """A vector as OpenAI's ``encoding_format: base64`` sends it: little-endian float32s."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embeddings_list(
    vectors: list[Any], model: str, prompt_tokens: int, encoding: Any = None
) -> dict[str, Any]:
    """An OpenAI embeddings list (each vector base64 when the client asked for it: the
    openai SDK does by default)."""
    if encoding == "base64":
        vectors = [_base64(vector) for vector in vectors]
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": vector}
            for i, vector in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def cohere_vectors(answer: dict[str, Any]) -> list[Any]:
    """Cohere's ``embeddings``: a list of vectors, or ``{"float": [...]}`` by type."""
    embeddings = answer["embeddings"]
    vectors = embeddings["float"] if isinstance(embeddings, dict) else embeddings
    if not isinstance(vectors, list):
        raise TypeError("embeddings")
    return vectors
