"""Anthropic Messages requests and answers, translated both ways.

    egress (an Anthropic deployment serves an OpenAI-shaped call; the ingress half, a client
    speaking Anthropic, is ``ingress``, and the untranslated pass-through is ``native``)
    request_to_anthropic: chat -> Messages
    completion_from_anthropic: msg -> completion

    OpenAI                               Anthropic
    system messages                      system
    user/assistant content parts         text / image blocks
    assistant tool_calls                 tool_use blocks (arguments parsed to input)
    tool messages                        a user turn of tool_result blocks
    tools / tool_choice                  tools (input_schema) / tool_choice auto|any|tool|none
    max_completion_tokens | max_tokens   max_tokens (required there: DEFAULT_MAX_TOKENS if unset)
    stop                                 stop_sequences
    user                                 metadata.user_id
    response_format json_schema|object   one tool whose input is the schema, forced by
                                         tool_choice; its input comes back as the message text

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
# OpenAI parameters Anthropic has no equivalent for (``n`` only when it is not 1).
UNSUPPORTED = frozenset(
    {
        "n",
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "audio",
        "modalities",
        "prediction",
        "web_search_options",
        "functions",
        "function_call",
    }
)


def _unsupported(names: list[str]) -> InvalidRequest:
    listed = ", ".join(f"'{n}'" for n in names)
    return InvalidRequest(
        f"not supported by this model's provider (anthropic): {listed}",
        param=names[0],
        code="unsupported_parameter",
    )


# The tool a structured answer (``response_format``) is asked for through: the schema is its input.
FORMAT_TOOL = "structured_output"
FORMAT_DESCRIPTION = "Answer with the requested structure by calling this tool."


def structured_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The forced tool that serves ``response_format`` (None for text or no format)."""
    fmt = body.get("response_format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        schema: Any = {"type": "object"}
    elif kind == "json_schema" and isinstance(fmt.get("json_schema"), dict):
        schema = fmt["json_schema"].get("schema") or {"type": "object"}
        if not isinstance(schema, dict):
            raise InvalidRequest(
                "response_format.json_schema.schema must be an object", param="response_format"
            )
    else:
        raise InvalidRequest(
            "response_format must be text, json_object or json_schema", param="response_format"
        )
    if body.get("tools"):
        raise InvalidRequest(
            "this model's provider (anthropic) serves response_format through a forced tool "
            "call, so it cannot be combined with tools in one request",
            param="response_format",
        )
    return {"name": FORMAT_TOOL, "description": FORMAT_DESCRIPTION, "input_schema": schema}


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
    refused = [n for n in body if n in UNSUPPORTED and not (n == "n" and body[n] in (1, None))]
    if refused:
        raise _unsupported(refused)
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
    structured = structured_tool(body)
    if structured is not None:
        out["tools"] = [structured]
        out["tool_choice"] = {"type": "tool", "name": FORMAT_TOOL}
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    if body.get("stream"):
        out["stream"] = True
    return out


def completion_from_anthropic(
    message: dict[str, Any], model: str, structured: bool = False
) -> tuple[dict[str, Any], Usage]:
    """An Anthropic Messages answer as an OpenAI chat.completion, and its usage. ``structured``:
    the request asked for ``response_format``, and the forced tool's input is the answer."""
    content = message.get("content", [])
    text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
    calls = [v.tool_call(b) for b in content if b.get("type") == "tool_use"]
    finish = v.finish_reason(message.get("stop_reason"))
    if structured:
        answers = [c for c in calls if c["function"]["name"] == FORMAT_TOOL]
        if answers:
            text, calls, finish = answers[0]["function"]["arguments"], [], "stop"
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
                "finish_reason": finish,
            }
        ],
        "usage": openai.usage_json(usage),
    }
    return completion, usage
