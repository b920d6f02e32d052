"""What the Anthropic Messages format and the OpenAI format say differently, written once for
both directions: stop reasons, tool choice, content blocks and parts, tool calls, usage, errors.

Ingress (a client speaking Anthropic, served by any deployment) and egress (an Anthropic
deployment serving an OpenAI-shaped call) both translate with these tables, so the two
directions cannot drift apart.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.errors import GatewayError, InvalidRequest
from gateway.values import Usage
from gateway.wire.openai import count_of

# (Anthropic stop_reason, OpenAI finish_reason). Anthropic -> OpenAI reads every pair; OpenAI ->
# Anthropic takes the first pair that names the OpenAI value.
STOP_REASONS = (
    ("end_turn", "stop"),
    ("max_tokens", "length"),
    ("tool_use", "tool_calls"),
    ("refusal", "content_filter"),
    ("stop_sequence", "stop"),
    ("pause_turn", "stop"),
)
_TO_FINISH = dict(STOP_REASONS)
_TO_STOP = {finish: stop for stop, finish in reversed(STOP_REASONS)}

# Anthropic tool_choice type <-> OpenAI tool_choice string ("tool" names a function: see below).
TOOL_CHOICES = (("auto", "auto"), ("any", "required"), ("none", "none"))
_CHOICE_TO_OPENAI = dict(TOOL_CHOICES)
_CHOICE_TO_ANTHROPIC = {openai: anthropic for anthropic, openai in TOOL_CHOICES}

ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "rate_limit_error",
    }
)
# Every error type Anthropic's API documents: the only ones an upstream's are passed on as.
UPSTREAM_ERROR_TYPES = ERROR_TYPES | {
    "request_too_large",
    "api_error",
    "overloaded_error",
    "billing_error",
    "timeout_error",
}


def finish_reason(stop_reason: Any) -> str:
    """Anthropic ``stop_reason`` -> OpenAI ``finish_reason`` (unknown reasons: ``stop``)."""
    return _TO_FINISH.get(stop_reason or "", "stop")


def stop_reason(finish: Any) -> str:
    """OpenAI ``finish_reason`` -> Anthropic ``stop_reason`` (unknown reasons: ``end_turn``)."""
    return _TO_STOP.get(finish or "", "end_turn")


def tool_choice_to_anthropic(choice: Any, parallel: Any) -> dict[str, Any] | None:
    """OpenAI ``tool_choice`` and ``parallel_tool_calls`` -> Anthropic ``tool_choice``."""
    if choice is None and parallel is None:
        return None
    if choice is None:
        choice = "auto"
    if isinstance(choice, str) and choice in _CHOICE_TO_ANTHROPIC:
        out: dict[str, Any] = {"type": _CHOICE_TO_ANTHROPIC[choice]}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": choice["function"].get("name")}
    else:
        raise InvalidRequest("unsupported tool_choice", param="tool_choice")
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def tool_choice_to_openai(choice: Any) -> tuple[Any, bool | None]:
    """Anthropic ``tool_choice`` -> OpenAI (``tool_choice``, ``parallel_tool_calls`` or None)."""
    if not isinstance(choice, dict):
        raise InvalidRequest("tool_choice must be an object", param="tool_choice")
    kind = choice.get("type")
    if kind == "none":
        return "none", None
    parallel = False if choice.get("disable_parallel_tool_use") else None
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}, parallel
    if isinstance(kind, str) and kind in _CHOICE_TO_OPENAI:
        return _CHOICE_TO_OPENAI[kind], parallel
    raise InvalidRequest(f"tool_choice type {kind!r} is not supported", param="tool_choice")


def tools_to_anthropic(tools: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": t["function"]["name"],
            "description": t["function"].get("description", ""),
            "input_schema": t["function"].get("parameters") or {"type": "object"},
        }
        for t in tools
        if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]


def tools_to_openai(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
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


# -- content: OpenAI parts <-> Anthropic blocks ---------------------------------------------------
def image_block(url: str) -> dict[str, Any]:
    """An OpenAI ``image_url`` URL (data: or http(s)) as an Anthropic image block."""
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


def document_block(file: Any) -> dict[str, Any]:
    """An OpenAI ``file`` part carrying a base64 PDF (``file_data``) as a document block."""
    data = file.get("file_data") if isinstance(file, dict) else None
    prefix = "data:application/pdf;base64,"
    if not isinstance(data, str) or not data.startswith(prefix):
        raise InvalidRequest(
            "file parts must carry a base64 PDF as file_data (a file_id cannot be sent on)",
            param="messages",
        )
    block: dict[str, Any] = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": data[len(prefix) :]},
    }
    if isinstance(file.get("filename"), str):
        block["title"] = file["filename"]
    return block


def image_part(block: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic image block as an OpenAI ``image_url`` part."""
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif source.get("type") == "url":
        url = str(source.get("url"))
    else:
        raise InvalidRequest("image source must be base64 or url", param="messages")
    return {"type": "image_url", "image_url": {"url": url}}


def blocks_of(content: Any) -> list[dict[str, Any]]:
    """OpenAI message content (a string or parts) as Anthropic text and image blocks."""
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
            blocks.append(image_block(image.get("url", "") if isinstance(image, dict) else ""))
        elif kind == "file":
            blocks.append(document_block(part.get("file")))
        else:
            raise InvalidRequest(f"content part type {kind!r} is not supported", param="messages")
    return blocks


def part_of(block: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic text or image block as an OpenAI content part."""
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": block.get("text", "")}
    if kind == "image":
        return image_part(block)
    raise InvalidRequest(f"content block type {kind!r} is not supported", param="messages")


def text_of_blocks(blocks: Any) -> str:
    """The text of Anthropic content: a string, or the text blocks of a list."""
    if isinstance(blocks, str):
        return blocks
    if isinstance(blocks, list):
        return "".join(
            b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


# -- tool calls: OpenAI tool_calls <-> Anthropic tool_use blocks --------------------------------
def tool_use_block(call: dict[str, Any], strict: bool) -> dict[str, Any]:
    """An OpenAI tool call as a ``tool_use`` block. ``strict``: arguments that are not JSON are
    refused (a client's request); otherwise they become ``{}`` (an upstream's answer)."""
    function = call.get("function") if isinstance(call, dict) else None
    function = function if isinstance(function, dict) else {}
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except (ValueError, TypeError, RecursionError):
        arguments = None
    if not isinstance(arguments, dict):
        if strict:
            message = "tool_calls arguments must be a JSON object"
            raise InvalidRequest(message, param="messages")
        arguments = {}
    return {
        "type": "tool_use",
        "id": call.get("id") if isinstance(call, dict) else None,
        "name": function.get("name"),
        "input": arguments,
    }


def tool_call(block: dict[str, Any]) -> dict[str, Any]:
    """A ``tool_use`` block as an OpenAI tool call."""
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": json.dumps(block.get("input", {}))},
    }


# -- usage and errors ---------------------------------------------------------------------------
def usage_of(usage: Any) -> Usage:
    """Anthropic ``usage`` as Usage: cache reads and writes count as prompt tokens."""
    if not isinstance(usage, dict):
        return Usage()
    cached = count_of(usage.get("cache_read_input_tokens"))
    created = count_of(usage.get("cache_creation_input_tokens"))
    return Usage(
        prompt_tokens=count_of(usage.get("input_tokens")) + cached + created,
        completion_tokens=count_of(usage.get("output_tokens")),
        cached_tokens=cached,
        cache_write_tokens=created,
    )


def error_body(exc: GatewayError) -> dict[str, Any]:
    """A GatewayError in Anthropic's error shape."""
    if exc.http_status == 413:
        kind = "request_too_large"
    elif exc.type in ERROR_TYPES:
        kind = exc.type
    else:
        kind = "overloaded_error" if exc.http_status == 503 else "api_error"
    return {"type": "error", "error": {"type": kind, "message": exc.message}}
