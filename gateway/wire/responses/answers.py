"""A chat answer as a Responses object, Responses usage both ways, and the Responses shape of
the gateway's errors in a stream."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from gateway.values import Usage
from gateway.wire import openai
from gateway.wire.responses.requests import CUSTOM_INPUT, FINISH, Tools, input_messages


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def usage_json(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def usage_from(usage: Any) -> Usage | None:
    """A Responses ``usage`` object (an OpenAI upstream's) as Usage."""
    if not isinstance(usage, dict):
        return None
    details = usage.get("input_tokens_details")
    cached = details.get("cached_tokens", 0) if isinstance(details, dict) else 0
    return Usage(
        prompt_tokens=openai.count_of(usage.get("input_tokens")),
        completion_tokens=openai.count_of(usage.get("output_tokens")),
        cached_tokens=openai.count_of(cached),
    )


def envelope(
    response_id: str, body: dict[str, Any], model: str, created: int, status: str
) -> dict[str, Any]:
    """The fields of a Responses object that echo the request."""
    text: dict[str, Any] = body["text"] if isinstance(body.get("text"), dict) else {}
    reasoning: dict[str, Any] = body["reasoning"] if isinstance(body.get("reasoning"), dict) else {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, **text},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def call_item(call: dict[str, Any], tools: Tools) -> dict[str, Any]:
    function = call["function"]
    name = function["name"]
    arguments = function.get("arguments") or ""
    if name in tools.custom:
        try:
            raw = json.loads(arguments).get(CUSTOM_INPUT, "") if arguments else ""
        except (ValueError, AttributeError):
            raw = arguments
        return {
            "type": "custom_tool_call",
            "id": new_id("ctc"),
            "call_id": call.get("id") or new_id("call"),
            "name": name,
            "input": raw if isinstance(raw, str) else json.dumps(raw),
            "status": "completed",
        }
    own, space = tools.item(name)
    item = {
        "type": "function_call",
        "id": new_id("fc"),
        "call_id": call.get("id") or new_id("call"),
        "name": own,
        "arguments": arguments,
        "status": "completed",
    }
    if space is not None:
        item["namespace"] = space
    return item


def message_item(text: str, item_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id or new_id("msg"),
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def response_from_chat(
    completion: dict[str, Any],
    body: dict[str, Any],
    tools: Tools,
    usage: Usage | None,
    response_id: str,
) -> dict[str, Any]:
    """A chat completion as a Responses object (ValueError-family errors when it is not one)."""
    choice = completion["choices"][0]
    message = choice["message"]
    output: list[dict[str, Any]] = []
    content = message.get("content")
    if isinstance(content, str) and content:
        output.append(message_item(content))
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        output.append(
            {
                "type": "message",
                "id": new_id("msg"),
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "refusal", "refusal": refusal}],
            }
        )
    output += [call_item(call, tools) for call in message.get("tool_calls") or []]
    finish = choice.get("finish_reason")
    reason = FINISH.get(finish) if isinstance(finish, str) else None
    created = completion.get("created")
    answer = envelope(
        response_id,
        body,
        str(body["model"]),
        created if isinstance(created, int) else int(time.time()),
        "incomplete" if reason else "completed",
    )
    if reason:
        answer["incomplete_details"] = {"reason": reason}
    answer["output"] = output
    answer["usage"] = usage_json(usage)
    return answer


def output_messages(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A response's output items as chat messages (what a follow-up turn is sent after)."""
    return input_messages([item for item in output if item.get("type") != "reasoning"])


def error_event(exc_body: dict[str, Any]) -> dict[str, Any]:
    """A Responses stream's ``error`` event from the gateway's error body (``{"error": ...}``);
    ``error`` stays in it so that SDKs raise instead of ending the stream quietly."""
    error = exc_body.get("error") or {}
    return {
        "type": "error",
        "code": error.get("code"),
        "message": error.get("message"),
        "param": error.get("param"),
        "sequence_number": 0,
        "error": error,
    }
