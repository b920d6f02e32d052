"""Request policy: which body fields a client may send, checked before anything else happens.

Deny by default: a field the gateway does not know is refused, and fields that would steer the
upstream (where the call goes, with which credential or headers) are refused with a message that
says why. The upstream endpoint and its credential belong to the operator's config alone.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import InvalidRequest

# Fields that in one gateway or SDK or another change the upstream's address, credential or
# headers. Refused by name, whatever their value (LiteLLM issues #24952, #37053 are this class).
STEERING_FIELDS = frozenset(
    {
        "api_base",
        "base_url",
        "api_key",
        "api_version",
        "api_type",
        "azure_endpoint",
        "azure_ad_token",
        "organization",
        "extra_headers",
        "headers",
        "extra_query",
        "extra_body",
        "custom_llm_provider",
        "deployment_id",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_region_name",
        "vertex_credentials",
        "vertex_project",
        "vertex_location",
        "proxy",
        "proxies",
        "timeout",
        "http_client",
    }
)

CHAT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "n",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "user",
        "seed",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "functions",
        "function_call",
        "service_tier",
        "store",
        "metadata",
        "reasoning_effort",
        "modalities",
        "audio",
        "prediction",
        "web_search_options",
        "verbosity",
        "safety_identifier",
        "prompt_cache_key",
    }
)

EMBEDDING_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
MAX_N = 16
# Bounds that keep every product of a request's numbers (max_tokens x n x a price in nano-dollars
# per token) inside 2**53, where counters in Redis and in memory stay exact.
MAX_TOKENS = 2**31 - 1
MAX_DIMENSIONS = 65536
INT64 = (-(2**63), 2**63 - 1)


def check_fields(body: dict[str, Any], allowed: frozenset[str]) -> None:
    """Deny by default: steering fields by name, then anything not in ``allowed``."""
    for name in body:
        if name in STEERING_FIELDS:
            raise InvalidRequest(
                f"'{name}' is not accepted: the upstream endpoint, its credential and headers "
                "are set by the gateway's operator",
                param=name,
                code="forbidden_parameter",
            )
        if name not in allowed:
            raise InvalidRequest(
                f"unknown parameter '{name}'", param=name, code="unknown_parameter"
            )


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a string", param="model")
    return model


def _is(value: Any, kind: type | tuple[type, ...]) -> bool:
    """``isinstance``, except that a boolean is not an integer or a number here."""
    return isinstance(value, kind) and not (isinstance(value, bool) and bool not in _kinds(kind))


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


WHAT = {str: "a string", bool: "a boolean", dict: "an object", list: "an array", int: "an integer"}


def _expect(
    container: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str = ""
) -> Any:
    """``container[name]`` when it is absent, null or of ``kind``; a 400 naming it otherwise."""
    value = container.get(name)
    if value is not None and not _is(value, kind):
        what = " or ".join(WHAT.get(k, "a number") for k in _kinds(kind))
        path = f"{where}.{name}" if where else name
        raise InvalidRequest(f"'{path}' must be {what}", param=path)
    return value


def _integer(body: dict[str, Any], name: str, low: int, high: int) -> None:
    value = _expect(body, name, int)
    if value is not None and not low <= value <= high:
        raise InvalidRequest(f"'{name}' must be between {low} and {high}", param=name)


def _strings(value: Any, name: str) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequest(f"'{name}' must be an array of strings", param=name)


# -- chat messages --------------------------------------------------------------------------------
def _content(content: Any, where: str) -> None:
    """null, a string, or an array of parts, each an object with a string ``type`` (text parts
    with a string ``text``, image parts with an ``image_url`` object holding a string ``url``)."""
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise InvalidRequest(f"'{where}' must be a string or an array of parts", param=where)
    for index, part in enumerate(content):
        at = f"{where}[{index}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise InvalidRequest(f"'{at}' must be an object with a string 'type'", param=at)
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise InvalidRequest(f"'{at}.text' must be a string", param=f"{at}.text")
        if part["type"] == "image_url":
            image = part.get("image_url")
            if not isinstance(image, dict) or not isinstance(image.get("url"), str):
                message = f"'{at}.image_url' must be an object with a string 'url'"
                raise InvalidRequest(message, param=f"{at}.image_url")
        if part["type"] == "refusal":
            _expect(part, "refusal", str, at)


def _function(function: Any, where: str, name_required: bool = True) -> None:
    if not isinstance(function, dict):
        raise InvalidRequest(f"'{where}' must be an object", param=where)
    if name_required and not isinstance(function.get("name"), str):
        raise InvalidRequest(f"'{where}.name' must be a string", param=f"{where}.name")
    _expect(function, "name", str, where)
    _expect(function, "arguments", str, where)
    _expect(function, "description", str, where)
    _expect(function, "parameters", dict, where)


def _tool_calls(calls: Any, where: str) -> None:
    if not isinstance(calls, list):
        raise InvalidRequest(f"'{where}' must be an array", param=where)
    for index, call in enumerate(calls):
        at = f"{where}[{index}]"
        if not isinstance(call, dict):
            raise InvalidRequest(f"'{at}' must be an object", param=at)
        _expect(call, "id", str, at)
        _expect(call, "type", str, at)
        if call.get("type", "function") == "function":
            _function(call.get("function"), f"{at}.function")


def _message(message: Any, where: str) -> None:
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise InvalidRequest(f"{where} must be an object with a 'role'", param=where)
    _content(message.get("content"), f"{where}.content")
    _expect(message, "name", str, where)
    _expect(message, "tool_call_id", str, where)
    if message.get("tool_calls") is not None:
        _tool_calls(message["tool_calls"], f"{where}.tool_calls")
    if message.get("function_call") is not None:
        _function(message["function_call"], f"{where}.function_call")


def _tools(tools: Any) -> None:
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array", param="tools")
    for index, tool in enumerate(tools):
        at = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise InvalidRequest(f"'{at}' must be an object", param=at)
        _expect(tool, "type", str, at)
        if tool.get("type", "function") == "function":
            _function(tool.get("function"), f"{at}.function")


def _tool_choice(choice: Any) -> None:
    if choice is None or isinstance(choice, str):
        return
    if not isinstance(choice, dict):
        raise InvalidRequest("'tool_choice' must be a string or an object", param="tool_choice")
    _expect(choice, "type", str, "tool_choice")
    if choice.get("function") is not None:
        _function(choice["function"], "tool_choice.function")


def check_chat(body: dict[str, Any]) -> str:
    """Validate a chat-completions body, every field's type down to the message parts and tool
    calls; returns the requested model."""
    check_fields(body, CHAT_FIELDS)
    model = _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    for index, message in enumerate(messages):
        _message(message, f"messages[{index}]")
    for name in ("stream", "logprobs", "parallel_tool_calls", "store"):
        _expect(body, name, bool)
    for name in ("user", "service_tier", "reasoning_effort", "verbosity", "safety_identifier"):
        _expect(body, name, str)
    _expect(body, "prompt_cache_key", str)
    for name in ("audio", "prediction", "web_search_options"):
        _expect(body, name, dict)
    if _expect(body, "stream_options", dict) is not None:
        _expect(body["stream_options"], "include_usage", bool, "stream_options")
    if _expect(body, "response_format", dict) is not None:
        _expect(body["response_format"], "type", str, "response_format")
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        _expect(body, name, (int, float))
    _integer(body, "n", 1, MAX_N)
    _integer(body, "max_tokens", 1, MAX_TOKENS)
    _integer(body, "max_completion_tokens", 1, MAX_TOKENS)
    _integer(body, "seed", *INT64)
    _integer(body, "top_logprobs", 0, 20)
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str):
        _strings(stop, "stop")
    if body.get("modalities") is not None:
        _strings(body["modalities"], "modalities")
    if body.get("tools") is not None:
        _tools(body["tools"])
    _tool_choice(body.get("tool_choice"))
    if body.get("functions") is not None:
        _tools([{"type": "function", "function": f} for f in _list(body, "functions")])
    function_call = body.get("function_call")
    if function_call is not None and not isinstance(function_call, str):
        _function(function_call, "function_call")
    bias = _expect(body, "logit_bias", dict)
    if bias is not None and not all(_is(v, (int, float)) for v in bias.values()):
        raise InvalidRequest("'logit_bias' values must be numbers", param="logit_bias")
    metadata = _expect(body, "metadata", dict)
    if metadata is not None and not all(isinstance(v, str) for v in metadata.values()):
        raise InvalidRequest("'metadata' values must be strings", param="metadata")
    if body.get("stream_options") is not None and not body.get("stream"):
        raise InvalidRequest(
            "'stream_options' is only allowed with 'stream': true", param="stream_options"
        )
    return model


def _list(body: dict[str, Any], name: str) -> list[Any]:
    value = body[name]
    if not isinstance(value, list):
        raise InvalidRequest(f"'{name}' must be an array", param=name)
    return value


def check_embeddings(body: dict[str, Any]) -> str:
    """Validate an embeddings body: ``input`` a non-empty string, or an array of strings, of
    token ids, or of arrays of token ids; returns the requested model."""
    check_fields(body, EMBEDDING_FIELDS)
    model = _model(body)
    value = body.get("input")
    if not isinstance(value, str | list) or not value:
        raise InvalidRequest("'input' must be a non-empty string or array", param="input")
    if isinstance(value, list) and not (
        all(isinstance(v, str) for v in value)
        or all(_is(v, int) for v in value)
        or all(isinstance(v, list) and all(_is(t, int) for t in v) for v in value)
    ):
        message = "'input' must be strings, token ids, or arrays of token ids"
        raise InvalidRequest(message, param="input")
    _expect(body, "user", str)
    encoding = _expect(body, "encoding_format", str)
    if encoding is not None and encoding not in ("float", "base64"):
        raise InvalidRequest(
            "'encoding_format' must be 'float' or 'base64'", param="encoding_format"
        )
    _integer(body, "dimensions", 1, MAX_DIMENSIONS)
    return model
