"""Google's generateContent format (the Gemini API and Vertex AI speak the same one), translated
both ways against the gateway's internal OpenAI shape. Pure functions, no I/O.

    OpenAI                               Gemini
    system / developer messages          systemInstruction.parts[].text
    user / assistant content             contents[] (role user / model), parts text | inlineData
    assistant tool_calls                 functionCall {name, args} parts
    tool messages                        functionResponse {name, response} parts in a user turn
    tools / tool_choice                  tools[].functionDeclarations / toolConfig
    response_format json_schema|object   generationConfig.responseMimeType + responseJsonSchema
    max_completion_tokens | max_tokens   generationConfig.maxOutputTokens
    stop, temperature, top_p, n, seed    stopSequences, temperature, topP, candidateCount, seed
    usageMetadata                        usage (thoughts count as output; cached as cached)

A safety block is answered, not raised: the candidate's ``SAFETY`` (or ``PROHIBITED_CONTENT``,
``BLOCKLIST``, ``SPII``, ``RECITATION``, ``IMAGE_SAFETY``) finish, or a prompt refused with
``promptFeedback.blockReason``, becomes ``finish_reason: "content_filter"`` with whatever text
came before it (Anthropic ingress reads that as ``stop_reason: "refusal"``). Deny by default: an
OpenAI parameter with no Gemini equivalent is refused with a 400 that names it.
"""

from __future__ import annotations

import base64
import json
import struct
import time
from typing import Any

from gateway.errors import InvalidRequest, UpstreamError
from gateway.values import Usage
from gateway.wire import openai
from gateway.wire.openai import count_of

UNSUPPORTED = frozenset(
    {
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "audio",
        "modalities",
        "prediction",
        "web_search_options",
        "functions",
        "function_call",
        "service_tier",
        "store",
        "reasoning_effort",
    }
)
SAFETY_FINISHES = frozenset(
    {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY"}
)
FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length"}
TOOL_CHOICES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def _unsupported(name: str) -> InvalidRequest:
    return InvalidRequest(
        f"'{name}' is not supported by this model's provider (google)",
        param=name,
        code="unsupported_parameter",
    )


def finish_reason(reason: Any, has_calls: bool = False) -> str:
    """A Gemini ``finishReason`` as an OpenAI ``finish_reason`` (unknown reasons: ``stop``)."""
    if reason in SAFETY_FINISHES:
        return "content_filter"
    if has_calls and reason in (None, "STOP"):
        return "tool_calls"
    return FINISH_REASONS.get(reason or "", "stop")


# -- request: an OpenAI chat body as generateContent ------------------------------------------
def _image(url: Any) -> dict[str, Any]:
    if not isinstance(url, str) or not url.startswith("data:"):
        raise InvalidRequest(
            "google takes images as base64 data URLs (data:image/png;base64,...)",
            param="messages",
        )
    header, _, data = url.partition(",")
    media_type = header[5:].split(";")[0]
    if ";base64" not in header or not media_type.startswith("image/"):
        raise InvalidRequest("image data URLs must be base64 images", param="messages")
    return {"inlineData": {"mimeType": media_type, "data": data}}


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest("'content' must be a string or a list of parts", param="messages")
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"text": part["text"]})
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            parts.append(_image(part["image_url"].get("url")))
        else:
            raise InvalidRequest(
                f"content part of type {kind!r} is not supported by google", param="messages"
            )
    return parts


def _arguments(text: Any) -> dict[str, Any]:
    try:
        args = json.loads(text) if isinstance(text, str) and text else {}
    except ValueError:
        raise InvalidRequest("tool call arguments must be JSON", param="messages") from None
    if not isinstance(args, dict):
        raise InvalidRequest("tool call arguments must be a JSON object", param="messages")
    return args


def _tool_response(content: Any) -> dict[str, Any]:
    text = content if isinstance(content, str) else "".join(p["text"] for p in _parts(content))
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    return value if isinstance(value, dict) else {"result": value}


def _contents(messages: Any) -> tuple[list[str], list[dict[str, Any]]]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty list", param="messages")
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call id -> function name (Gemini answers by name)

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["parts"] += parts
        else:
            turns.append({"role": role, "parts": parts})

    for message in messages:
        if not isinstance(message, dict):
            raise InvalidRequest("each message must be an object", param="messages")
        role = message.get("role")
        if role in ("system", "developer"):
            system += [p["text"] for p in _parts(message.get("content")) if "text" in p]
        elif role == "user":
            add("user", _parts(message.get("content")))
        elif role == "assistant":
            parts = _parts(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                name = function.get("name")
                if not isinstance(name, str):
                    raise InvalidRequest("a tool call needs a function name", param="messages")
                names[str(call.get("id"))] = name
                parts.append(
                    {"functionCall": {"name": name, "args": _arguments(function.get("arguments"))}}
                )
            add("model", parts)
        elif role == "tool":
            name = names.get(str(message.get("tool_call_id")))
            if name is None:
                raise InvalidRequest(
                    "a tool message must answer a tool call of an earlier assistant message",
                    param="messages",
                )
            response = _tool_response(message.get("content"))
            add("user", [{"functionResponse": {"name": name, "response": response}}])
        else:
            raise InvalidRequest(f"message role {role!r} is not supported", param="messages")
    if not turns:
        raise InvalidRequest("'messages' needs at least one user message", param="messages")
    return system, turns


def _tools(tools: Any) -> list[dict[str, Any]]:
    declarations = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") != "function" or not isinstance(function, dict):
            raise InvalidRequest("only function tools are supported by google", param="tools")
        declaration: dict[str, Any] = {"name": function.get("name")}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters"):
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}]


def _tool_config(choice: Any) -> dict[str, Any]:
    if isinstance(choice, str) and choice in TOOL_CHOICES:
        return {"functionCallingConfig": {"mode": TOOL_CHOICES[choice]}}
    name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if not isinstance(name, str):
        raise InvalidRequest("'tool_choice' is not one google can follow", param="tool_choice")
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


def _response_format(value: Any, config: dict[str, Any]) -> None:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
        return
    schema = (value.get("json_schema") or {}).get("schema") if kind == "json_schema" else None
    if not isinstance(schema, dict):
        raise InvalidRequest(
            "'response_format' must be text, json_object or json_schema with a schema",
            param="response_format",
        )
    config["responseMimeType"] = "application/json"
    config["responseJsonSchema"] = schema


GENERATION = (  # OpenAI parameter -> generationConfig field, passed as given
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("n", "candidateCount"),
    ("seed", "seed"),
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
)


def request_to_gemini(body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat body as a generateContent request (the model goes in the URL)."""
    for name in UNSUPPORTED:
        if body.get(name) is not None:
            raise _unsupported(name)
    system, contents = _contents(body.get("messages"))
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    config: dict[str, Any] = {}
    for name, field in GENERATION:
        if body.get(name) is not None:
            config[field] = body[name]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is not None:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if stop is not None:
        config["stopSequences"] = [stop] if isinstance(stop, str) else stop
    if body.get("response_format") is not None:
        _response_format(body["response_format"], config)
    if config:
        out["generationConfig"] = config
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise InvalidRequest("'tools' must be a list", param="tools")
        out["tools"] = _tools(tools)
    if body.get("tool_choice") is not None:
        out["toolConfig"] = _tool_config(body["tool_choice"])
    return out


# -- answer: generateContent as a chat.completion ----------------------------------------------
def usage_of(metadata: Any) -> Usage:
    """``usageMetadata`` as Usage: thinking tokens are billed as output, so they count there."""
    if not isinstance(metadata, dict):
        return Usage()
    return Usage(
        prompt_tokens=count_of(metadata.get("promptTokenCount")),
        completion_tokens=count_of(metadata.get("candidatesTokenCount"))
        + count_of(metadata.get("thoughtsTokenCount")),
        cached_tokens=count_of(metadata.get("cachedContentTokenCount")),
    )


def _message(candidate: dict[str, Any], call_ids: str) -> tuple[str, list[dict[str, Any]]]:
    """The text and tool calls of a candidate (thought summaries left out)."""
    parts = (candidate.get("content") or {}).get("parts") or []
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts:
        if part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            text.append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, dict):
            calls.append(
                {
                    "id": call.get("id") or f"call_{call_ids}_{len(calls)}",
                    "type": "function",
                    "function": {
                        "name": str(call.get("name", "")),
                        "arguments": json.dumps(call.get("args") or {}),
                    },
                }
            )
    return "".join(text), calls


def completion_from_gemini(answer: dict[str, Any], model: str) -> tuple[dict[str, Any], Usage]:
    """A generateContent answer as an OpenAI chat.completion, and its usage."""
    response_id = str(answer.get("responseId", ""))
    choices = []
    for index, candidate in enumerate(answer.get("candidates") or []):
        text, calls = _message(candidate, f"{response_id}{index}")
        reply: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            reply["tool_calls"] = calls
        choices.append(
            {
                "index": index,
                "message": reply,
                "logprobs": None,
                "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls)),
            }
        )
    if not choices:  # the prompt itself was blocked (promptFeedback.blockReason)
        choices = [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None},
                "logprobs": None,
                "finish_reason": "content_filter",
            }
        ]
    usage = usage_of(answer.get("usageMetadata"))
    completion = {
        "id": "chatcmpl-" + response_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": openai.usage_json(usage),
    }
    return completion, usage


class StreamTranslator(openai.ChunkWriter):
    """streamGenerateContent (``alt=sse``: each event one GenerateContentResponse) in, OpenAI
    ``chat.completion.chunk`` events out. The format has no end event: the stream is complete
    once a candidate (or the prompt feedback) gave its finish reason; ``finish()`` is called
    when the upstream closed the body."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self.id = "chatcmpl-"
        self.created = int(time.time())
        self.usage = Usage()
        self.started = False
        self.calls = 0
        self.finish: str | None = None

    @property
    def done(self) -> bool:
        return self.finish is not None

    def feed(self, data: bytes) -> list[bytes]:
        if not data:
            return []
        try:
            return self._translate(json.loads(data))
        except (ValueError, AttributeError, TypeError, KeyError, RecursionError):
            raise UpstreamError("the upstream sent an invalid stream event") from None

    def _translate(self, payload: dict[str, Any]) -> list[bytes]:
        if "error" in payload:
            raise UpstreamError("the upstream reported an error mid-stream")
        out: list[bytes] = []
        if not self.started:
            self.started = True
            self.id = "chatcmpl-" + str(payload.get("responseId", ""))
            out.append(self._chunk({"role": "assistant", "content": ""}))
        if payload.get("usageMetadata"):
            self.usage = usage_of(payload["usageMetadata"])
        candidates = payload.get("candidates") or []
        if not candidates and (payload.get("promptFeedback") or {}).get("blockReason"):
            self.finish = "content_filter"
            out.append(self._chunk({}, self.finish))
        for candidate in candidates[:1]:  # a stream carries one candidate (n=1)
            text, calls = _message(candidate, f"{self.id[9:]}{self.calls}")
            if text:
                out.append(self._chunk({"content": text}))
            for call in calls:
                out.append(self._chunk({"tool_calls": [{"index": self.calls, **call}]}))
                self.calls += 1
            reason = candidate.get("finishReason")
            if reason is not None:
                self.finish = finish_reason(reason, self.calls > 0)
                out.append(self._chunk({}, self.finish))
        return out

    def end(self) -> list[bytes]:
        out = []
        if self.include_usage:
            out.append(self._usage_chunk(self.usage))
        return [*out, self._end()]


# -- embeddings ----------------------------------------------------------------------------------
def embedding_inputs(body: dict[str, Any]) -> list[str]:
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidRequest(
            "'input' must be a string or a list of strings for google embeddings", param="input"
        )
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise InvalidRequest("'encoding_format' must be float or base64", param="encoding_format")
    return texts


def embeddings_to_gemini(body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    """An OpenAI embeddings body as batchEmbedContents (one request per input)."""
    requests = []
    for text in embedding_inputs(body):
        request: dict[str, Any] = {
            "model": f"models/{upstream_model}",
            "content": {"parts": [{"text": text}]},
        }
        if body.get("dimensions") is not None:
            request["outputDimensionality"] = body["dimensions"]
        requests.append(request)
    return {"requests": requests}


def _encoded(vector: list[float], encoding: Any) -> list[float] | str:
    """OpenAI's ``base64`` encoding: the little-endian float32 array, base64 (the SDKs ask it)."""
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def embeddings_list(
    vectors: list[Any], model: str, usage: Usage, encoding: Any = None
) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _encoded(list(v), encoding)}
            for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens},
    }


def embeddings_from_gemini(
    answer: dict[str, Any], body: dict[str, Any], usage: Usage
) -> dict[str, Any]:
    """batchEmbedContents' ``embeddings[].values`` as an OpenAI embeddings list."""
    vectors = [e["values"] for e in answer["embeddings"]]
    return embeddings_list(vectors, body.get("model", ""), usage, body.get("encoding_format"))


def embeddings_to_vertex(body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI embeddings body as Vertex AI's ``:predict`` for embedding models."""
    out: dict[str, Any] = {"instances": [{"content": t} for t in embedding_inputs(body)]}
    if body.get("dimensions") is not None:
        out["parameters"] = {"outputDimensionality": body["dimensions"]}
    return out


def embeddings_from_vertex(
    answer: dict[str, Any], body: dict[str, Any]
) -> tuple[dict[str, Any], Usage]:
    vectors, tokens = [], 0
    for prediction in answer["predictions"]:
        embedding = prediction["embeddings"]
        vectors.append(embedding["values"])
        counted = (embedding.get("statistics") or {}).get("token_count")  # a float on the wire
        tokens += count_of(int(counted)) if isinstance(counted, int | float) else 0
    usage = Usage(prompt_tokens=tokens)
    encoding = body.get("encoding_format")
    return embeddings_list(vectors, body.get("model", ""), usage, encoding), usage
