"""Anthropic Messages requests and answers, translated both ways.

    ingress (client speaks Anthropic)        egress (an Anthropic deployment serves OpenAI)
    request_to_openai: Messages -> chat      request_to_anthropic: chat -> Messages
    message_from_openai: completion -> msg   completion_from_anthropic: msg -> completion

    OpenAI                               Anthropic
    system messages                      system
    user/assistant content parts         text / image blocks
    assistant tool_calls                 tool_use blocks (arguments parsed to input)
    tool messages                        a user turn of tool_result blocks
    tools / tool_choice                  tools (input_schema) / tool_choice auto|any|tool|none
    max_completion_tokens | max_tokens   max_tokens (required there: DEFAULT_MAX_TOKENS if unset)
    stop                                 stop_sequences
    user                                 metadata.user_id

Deny by default in both directions: an Anthropic field the translation does not know is refused,
and so is an OpenAI parameter Anthropic has no equivalent for, with a 400 that names it.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.errors import InvalidRequest
from gateway.values import Usage
from gateway.wire import openai
from gateway.wire.anthropic import vocabulary as v

DEFAULT_MAX_TOKENS = 4096
SAMPLING = ("temperature", "top_p")
# The Anthropic request fields ingress accepts.
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
# OpenAI parameters Anthropic has no equivalent for (``n`` only when it is not 1).
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


def _unsupported(name: str) -> InvalidRequest:
    return InvalidRequest(
        f"'{name}' is not supported by this model's provider (anthropic)",
        param=name,
        code="unsupported_parameter",
    )


# -- egress: an OpenAI chat body for an Anthropic upstream ---------------------------------------
def _turns(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
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
            add("user", v.blocks_of(message.get("content")))
        elif role == "assistant":
            blocks = v.blocks_of(message.get("content"))
            blocks += [v.tool_use_block(c, strict=True) for c in message.get("tool_calls") or []]
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


def _text(content: Any) -> str:
    return "".join(b["text"] for b in v.blocks_of(content) if b["type"] == "text")


def request_to_anthropic(body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    """An OpenAI chat-completions body as an Anthropic Messages body."""
    for name in body:
        if name in UNSUPPORTED and not (name == "n" and body[name] == 1):
            raise _unsupported(name)
    system, messages = _turns(body["messages"])
    if not messages:
        raise InvalidRequest(
            "this model's provider (anthropic) needs a user or assistant message",
            param="messages",
        )
    out: dict[str, Any] = {
        "model": upstream_model,
        "messages": messages,
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    if system:
        out["system"] = system
    out.update({k: body[k] for k in SAMPLING if body.get(k) is not None})
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("tools"):
        out["tools"] = v.tools_to_anthropic(body["tools"])
    choice = v.tool_choice_to_anthropic(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None:
        out["tool_choice"] = choice
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    if body.get("stream"):
        out["stream"] = True
    return out


def completion_from_anthropic(message: dict[str, Any], model: str) -> tuple[dict[str, Any], Usage]:
    """An Anthropic Messages answer as an OpenAI chat.completion, and its usage."""
    content = message.get("content", [])
    text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
    calls = [v.tool_call(b) for b in content if b.get("type") == "tool_use"]
    reply: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        reply["tool_calls"] = calls
    usage = v.usage_of(message.get("usage"))
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
                "finish_reason": v.finish_reason(message.get("stop_reason")),
            }
        ],
        "usage": openai.usage_json(usage),
    }
    return completion, usage


# -- ingress: an Anthropic client served by any deployment ---------------------------------------
# What each block type must carry, and of which type, for the translation to read it.
BLOCK_FIELDS: dict[str, tuple[tuple[str, type], ...]] = {
    "text": (("text", str),),
    "image": (("source", dict),),
    "tool_use": (("id", str), ("name", str), ("input", dict)),
    "tool_result": (("tool_use_id", str),),
}
SOURCE_FIELDS = {"base64": (("media_type", str), ("data", str)), "url": (("url", str),)}


def _invalid(where: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"'{where}' must be {what}", param=where)


def _fields(item: dict[str, Any], needs: tuple[tuple[str, type], ...], where: str) -> None:
    for name, kind in needs:
        if not isinstance(item.get(name), kind):
            raise _invalid(f"{where}.{name}", "a string" if kind is str else "an object")


def check_blocks(blocks: Any, where: str) -> list[dict[str, Any]]:
    """Anthropic content as a list of blocks, each an object with a string ``type`` and the
    fields its type needs, of the right types (a string is one text block)."""
    if isinstance(blocks, str):
        return [{"type": "text", "text": blocks}]
    if not isinstance(blocks, list):
        raise _invalid(where, "a string or an array of content blocks")
    for index, block in enumerate(blocks):
        at = f"{where}[{index}]"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _invalid(at, "an object with a string 'type'")
        _fields(block, BLOCK_FIELDS.get(block["type"], ()), at)
        if block["type"] == "image":
            kind = block["source"].get("type")
            _fields(block["source"], SOURCE_FIELDS.get(kind, ()), f"{at}.source")
        if block["type"] == "tool_result" and block.get("content") is not None:
            check_blocks(block["content"], f"{at}.content")
        if block.get("is_error") is not None and not isinstance(block["is_error"], bool):
            raise _invalid(f"{at}.is_error", "a boolean")
    return blocks


def _messages_to_openai(turns: Any) -> list[dict[str, Any]]:
    if not isinstance(turns, list) or not turns:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    out: list[dict[str, Any]] = []
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict) or turn.get("role") not in ("user", "assistant"):
            raise InvalidRequest(
                f"messages[{index}] needs role 'user' or 'assistant'", param=f"messages[{index}]"
            )
        blocks = check_blocks(turn.get("content"), f"messages[{index}].content")
        if turn["role"] == "assistant":
            text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
            calls = [v.tool_call(b) for b in blocks if b.get("type") == "tool_use"]
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
                        "content": v.text_of_blocks(block.get("content")),
                    }
                )
            elif isinstance(block, dict):
                parts.append(v.part_of(block))
        if parts:
            out.append({"role": "user", "content": parts})
    return out


def request_to_openai(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages request as the internal (OpenAI chat) body. The caller has already
    refused unknown and steering fields (``FIELDS``)."""
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequest(
            "'max_tokens' is required and must be a positive integer", param="max_tokens"
        )
    messages = _messages_to_openai(body.get("messages"))
    if body.get("system") is not None:
        check_blocks(body["system"], "system")
    system = v.text_of_blocks(body.get("system"))
    if system:
        messages.insert(0, {"role": "system", "content": system})
    out: dict[str, Any] = {
        "model": body.get("model"),
        "messages": messages,
        "max_tokens": max_tokens,
    }
    for name in SAMPLING:
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise InvalidRequest("'tools' must be an array of objects", param="tools")
        for index, tool in enumerate(tools):
            _fields(tool, (("name", str),), f"tools[{index}]")
            for name, kind in (("description", str), ("input_schema", dict)):
                if tool.get(name) is not None and not isinstance(tool[name], kind):
                    what = "a string" if kind is str else "an object"
                    raise _invalid(f"tools[{index}].{name}", what)
        out["tools"] = v.tools_to_openai(tools)
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise _invalid("stream", "a boolean")
    if body.get("tool_choice") is not None:
        out["tool_choice"], parallel = v.tool_choice_to_openai(body["tool_choice"])
        if parallel is not None:
            out["parallel_tool_calls"] = parallel
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def message_from_openai(completion: dict[str, Any], model: str) -> dict[str, Any]:
    """An internal (OpenAI) chat.completion as an Anthropic Messages answer."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    content += [v.tool_use_block(c, strict=False) for c in message.get("tool_calls") or []]
    usage = openai.usage_from(completion.get("usage")) or Usage()
    return {
        "id": "msg_" + str(completion.get("id", "")).removeprefix("chatcmpl-"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": v.stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens},
    }
