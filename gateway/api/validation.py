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


def _expect(body: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> None:
    value = body.get(name)
    if value is not None and (
        not isinstance(value, kind) or (isinstance(value, bool) and kind is int)
    ):
        raise InvalidRequest(f"'{name}' must be {what}", param=name)


def check_chat(body: dict[str, Any]) -> str:
    """Validate a chat-completions body; returns the requested model."""
    check_fields(body, CHAT_FIELDS)
    model = _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(
                f"messages[{index}] must be an object with a 'role'", param=f"messages[{index}]"
            )
    _expect(body, "stream", bool, "a boolean")
    _expect(body, "stream_options", dict, "an object")
    _expect(body, "tools", list, "an array")
    _expect(body, "response_format", dict, "an object")
    _expect(body, "stop", (str, list), "a string or an array of strings")
    for name in ("max_tokens", "max_completion_tokens", "n", "seed", "top_logprobs"):
        _expect(body, name, int, "an integer")
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        _expect(body, name, (int, float), "a number")
    n = body.get("n")
    if n is not None and not 1 <= n <= MAX_N:
        raise InvalidRequest(f"'n' must be between 1 and {MAX_N}", param="n")
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and value < 1:
            raise InvalidRequest(f"'{name}' must be at least 1", param=name)
    if body.get("stream_options") is not None and not body.get("stream"):
        raise InvalidRequest(
            "'stream_options' is only allowed with 'stream': true", param="stream_options"
        )
    return model


def check_embeddings(body: dict[str, Any]) -> str:
    check_fields(body, EMBEDDING_FIELDS)
    model = _model(body)
    value = body.get("input")
    if not isinstance(value, str | list) or not value:
        raise InvalidRequest("'input' must be a non-empty string or array", param="input")
    _expect(body, "dimensions", int, "an integer")
    return model
