"""Cohere's v2 API, translated to and from the OpenAI shape, and its rerank shape (which the
gateway also serves as ``POST /v1/rerank``). Pure functions, no I/O.

    request_to_cohere / completion_from_cohere   /v2/chat (tools included)
    CohereStreamTranslator                        /v2/chat streams -> OpenAI chunks
    embed_request / embeddings_from_cohere        /v2/embed
    check_rerank / rerank_request / rerank_reply  /v2/rerank

Cohere v2's chat messages are close to OpenAI's (roles system, user, assistant, tool; tool calls
as ``{"id", "type": "function", "function": {"name", "arguments"}}``); the differences are the
parameter names (``p``, ``stop_sequences``), ``tool_choice`` (only ``REQUIRED`` and ``NONE``),
the answer's ``message.content`` blocks and upper-case finish reasons, and usage under
``usage.tokens`` / ``usage.billed_units``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from gateway.errors import InvalidRequest, UpstreamError
from gateway.values import Reply, Usage
from gateway.wire import openai
from gateway.wire.bedrock import embedding_inputs, embeddings_list, unsupported
from gateway.wire.openai import count_of

PROVIDER = "cohere"
UNSUPPORTED = frozenset(
    {
        "n",
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "audio",
        "modalities",
        "prediction",
        "web_search_options",
        "functions",
        "function_call",
        "parallel_tool_calls",
    }
)
PASSED = {  # OpenAI name -> Cohere name
    "temperature": "temperature",
    "top_p": "p",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "tools": "tools",
}
FINISH_REASONS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    # what v1 models (and v2's compatibility layer on some hosts) still say
    "ERROR_TOXIC": "content_filter",  # the answer was cut by Cohere's safety filter
    "ERROR_LIMIT": "length",  # the context window ran out
}
# The model failed part-way: the answer is not a whole one, so it is an upstream error (502),
# never passed on as if the model had finished ("stop").
FAILED = frozenset({"ERROR", "TIMEOUT"})
RERANK_FIELDS = frozenset(
    {"model", "query", "documents", "top_n", "max_tokens_per_doc", "return_documents"}
)
MAX_RERANK_DOCUMENTS = 10_000


# -- chat ---------------------------------------------------------------------------------------
def _message(message: dict[str, Any]) -> dict[str, Any]:
    role = message.get("role")
    if role == "developer":
        role = "system"
    if role not in ("system", "user", "assistant", "tool"):
        raise InvalidRequest(f"message role {role!r} is not supported", param="messages")
    out: dict[str, Any] = {"role": role}
    content = message.get("content")
    if isinstance(content, list):
        parts = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                parts.append({"type": "text", "text": part.get("text", "")})
            elif kind == "image_url" and role == "user":
                parts.append({"type": "image_url", "image_url": part.get("image_url")})
            else:
                raise InvalidRequest(
                    f"content part type {kind!r} is not supported here", param="messages"
                )
        out["content"] = parts
    elif content is not None:
        out["content"] = content
    if role == "assistant" and message.get("tool_calls"):
        out["tool_calls"] = message["tool_calls"]
    if role == "tool":
        out["tool_call_id"] = message.get("tool_call_id")
    return out


def request_to_cohere(body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    for name in body:
        if name in UNSUPPORTED and not (name == "n" and body[name] == 1):
            raise unsupported(name, PROVIDER)
    out: dict[str, Any] = {
        "model": upstream_model,
        "messages": [_message(m) for m in body["messages"]],
    }
    out.update(
        {theirs: body[ours] for ours, theirs in PASSED.items() if body.get(ours) is not None}
    )
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        out["max_tokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    choice = body.get("tool_choice")
    if choice == "required":
        out["tool_choice"] = "REQUIRED"
    elif choice == "none":
        out["tool_choice"] = "NONE"
    elif choice not in (None, "auto"):
        raise InvalidRequest(
            "this model's provider (cohere) takes tool_choice auto, required or none",
            param="tool_choice",
        )
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") != "text":
        schema = (response_format.get("json_schema") or {}).get("schema")
        out["response_format"] = {
            "type": "json_object",
            **({"json_schema": schema} if schema else {}),
        }
    if body.get("stream"):
        out["stream"] = True
    return out


def usage_of(usage: Any) -> Usage:
    """Cohere ``usage``: ``tokens`` (what the model read and wrote), else ``billed_units``."""
    if not isinstance(usage, dict):
        return Usage()
    counts = usage.get("tokens") or usage.get("billed_units") or {}
    if not isinstance(counts, dict):
        return Usage()
    return Usage(
        prompt_tokens=count_of(counts.get("input_tokens")),
        completion_tokens=count_of(counts.get("output_tokens")),
        cached_tokens=count_of(usage.get("cached_tokens")),
    )


def finish_reason(reason: Any) -> str:
    """A Cohere finish reason as OpenAI's (an unknown one, from a newer API: ``stop``)."""
    if reason in FAILED:
        raise UpstreamError(f"the Cohere model stopped with finish_reason {reason}")
    return FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop"


def completion_from_cohere(answer: dict[str, Any], model: str) -> tuple[dict[str, Any], Usage]:
    message = answer["message"]
    blocks = message.get("content") or []
    text = "".join(b["text"] for b in blocks if b.get("type") == "text")
    out: dict[str, Any] = {"role": "assistant", "content": text or None}
    calls = message.get("tool_calls")
    if calls:
        out["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {
                    "name": c["function"]["name"],
                    "arguments": c["function"].get("arguments") or "{}",
                },
            }
            for c in calls
        ]
    usage = usage_of(answer.get("usage"))
    completion = {
        "id": "chatcmpl-" + str(answer.get("id") or uuid.uuid4().hex),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": out,
                "finish_reason": finish_reason(answer.get("finish_reason")),
            }
        ],
        "usage": openai.usage_json(usage),
    }
    return completion, usage


class CohereStreamTranslator(openai.ChunkWriter):
    """Cohere v2 chat stream events (SSE, each with a ``type``) in, OpenAI chunks out; done at
    ``message-end``."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self.id = "chatcmpl-" + uuid.uuid4().hex
        self.created = int(time.time())
        self.usage: Usage | None = None
        self.done = False

    def feed(self, data: bytes) -> list[bytes]:
        if not data:
            return []
        try:
            return self._translate(json.loads(data))
        except (ValueError, AttributeError, TypeError, KeyError, RecursionError):
            raise UpstreamError("the upstream sent an invalid stream event") from None

    def _translate(self, event: dict[str, Any]) -> list[bytes]:
        kind = event["type"]
        delta = event.get("delta") or {}
        message = delta.get("message") or {}
        if kind == "message-start":
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content-delta":
            return [self._chunk({"content": message["content"]["text"]})]
        if kind == "tool-call-start":
            call = message["tool_calls"]
            start = {
                "index": event["index"],
                "id": call["id"],
                "type": "function",
                "function": {
                    "name": call["function"]["name"],
                    "arguments": call["function"].get("arguments") or "",
                },
            }
            return [self._chunk({"tool_calls": [start]})]
        if kind == "tool-call-delta":
            arguments = message["tool_calls"]["function"]["arguments"]
            part = {"index": event["index"], "function": {"arguments": arguments}}
            return [self._chunk({"tool_calls": [part]})]
        if kind == "message-end":
            self.done = True
            self.usage = usage_of(delta.get("usage"))
            out = [self._chunk({}, finish_reason(delta.get("finish_reason")))]
            if self.include_usage:
                out.append(self._usage_chunk(self.usage))
            return [*out, self._end()]
        return []  # content-start/-end, tool-plan-delta, tool-call-end, citations


# -- embed --------------------------------------------------------------------------------------
def embed_request(body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": upstream_model,
        "texts": embedding_inputs(body),
        "input_type": body.get("input_type") or "search_document",
        "embedding_types": ["float"],
    }
    if body.get("dimensions") is not None:
        out["output_dimension"] = body["dimensions"]
    return out


def embeddings_from_cohere(
    answer: dict[str, Any], model: str, encoding: Any = None
) -> tuple[dict[str, Any], Usage]:
    embeddings = answer["embeddings"]
    vectors = embeddings["float"] if isinstance(embeddings, dict) else embeddings
    if not isinstance(vectors, list):
        raise TypeError("embeddings")
    billed = (answer.get("meta") or {}).get("billed_units") or {}
    tokens = count_of(billed.get("input_tokens"))
    return embeddings_list(vectors, model, tokens, encoding), Usage(prompt_tokens=tokens)


# -- rerank -------------------------------------------------------------------------------------
def _invalid(problem: str, param: str) -> InvalidRequest:
    return InvalidRequest(problem, param=param)


def check_rerank(body: dict[str, Any]) -> str:
    """A ``POST /v1/rerank`` body (Cohere's shape) checked; its model."""
    unknown = sorted(set(body) - RERANK_FIELDS)
    if unknown:
        raise _invalid(f"unknown field {unknown[0]!r} for rerank", unknown[0])
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("'model' is required and must be a string", "model")
    if not isinstance(body.get("query"), str) or not body["query"]:
        raise _invalid("'query' is required and must be a non-empty string", "query")
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents:
        raise _invalid("'documents' must be a non-empty list", "documents")
    if len(documents) > MAX_RERANK_DOCUMENTS:
        raise _invalid(f"at most {MAX_RERANK_DOCUMENTS} documents", "documents")
    for document in documents:
        text = document.get("text") if isinstance(document, dict) else document
        if not isinstance(text, str):
            raise _invalid("each document must be a string or {'text': string}", "documents")
    for name in ("top_n", "max_tokens_per_doc"):
        value = body.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise _invalid(f"'{name}' must be a positive integer", name)
    if not isinstance(body.get("return_documents", False), bool):
        raise _invalid("'return_documents' must be a boolean", "return_documents")
    return model


def texts_of(body: dict[str, Any]) -> list[str]:
    return [d["text"] if isinstance(d, dict) else d for d in body["documents"]]


def rerank_request(body: dict[str, Any], upstream_model: str | None) -> dict[str, Any]:
    """The upstream's rerank body (Cohere v2's; without ``model`` for Bedrock's InvokeModel)."""
    out: dict[str, Any] = {"query": body["query"], "documents": texts_of(body)}
    if upstream_model is not None:
        out = {"model": upstream_model, **out}
    for name in ("top_n", "max_tokens_per_doc"):
        if body.get(name) is not None:
            out[name] = body[name]
    return out


def rerank_reply(answer: Any, body: dict[str, Any], name: str) -> Reply:
    """The upstream's rerank answer in Cohere's shape (documents added back when asked), with
    the search units it billed as the usage's prompt tokens (0 when it says none)."""
    texts = texts_of(body)
    try:
        results = []
        for result in answer["results"]:
            index = result["index"]
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(texts):
                raise ValueError("index")
            score = result["relevance_score"]
            if isinstance(score, bool) or not isinstance(score, int | float):
                raise ValueError("score")
            item: dict[str, Any] = {"index": index, "relevance_score": score}
            if body.get("return_documents"):
                item["document"] = {"text": texts[index]}
            results.append(item)
        meta = answer.get("meta") if isinstance(answer.get("meta"), dict) else {}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UpstreamError(
            f"deployment {name} answered with something that is not a rerank"
        ) from None
    billed = (meta or {}).get("billed_units") or {}
    units = count_of(billed.get("search_units")) if isinstance(billed, dict) else 0
    reply = {
        "id": str(answer.get("id") or uuid.uuid4()),
        "results": results,
        "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": units}},
    }
    return Reply(json.dumps(reply).encode(), Usage(prompt_tokens=0))
