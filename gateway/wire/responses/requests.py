"""A Responses request as a chat-completions request, and the checks every Responses request
gets whichever deployment answers it (the table: ``gateway.wire.responses``)."""

from __future__ import annotations

import json
from typing import Any

from gateway.errors import InvalidRequest

FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "text",
        "reasoning",
        "include",
        "prompt_cache_key",
        "max_output_tokens",
        "previous_response_id",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "top_logprobs",
        "truncation",
        "user",
        "safety_identifier",
        "metadata",
        "service_tier",
        "max_tool_calls",
        "background",
        "client_metadata",  # the Codex CLI's (its installation and session ids)
    }
)
# Fields only the pass-through (an OpenAI or Azure deployment) can honour: refused on a
# translated deployment when they ask for something (their "off" value is fine).
PASS_THROUGH_ONLY = {"background": False, "max_tool_calls": None, "top_logprobs": None}
CUSTOM_INPUT = "input"  # the one argument a custom tool becomes as a function
NAMESPACE_JOIN = "__"  # a namespace's function as one chat function: <namespace>__<name>
# Hosted tools a translated deployment does not offer the model, and says so (the
# ``x-sealgate-ignored-tools`` header) instead of refusing: the Codex CLI sends web_search by
# default, and a coding agent must not break on its defaults. Every other hosted tool is refused.
HOSTED_IGNORED = frozenset({"web_search", "web_search_preview"})
ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
FINISH = {"length": "max_output_tokens", "content_filter": "content_filter"}


def _refuse(what: str, param: str) -> InvalidRequest:
    return InvalidRequest(
        f"{what} is not supported by this model's deployment (its provider speaks chat "
        "completions, and the Responses API is translated to it)",
        param=param,
        code="unsupported_parameter",
    )


def _expect(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise InvalidRequest(f"'{where}' has the wrong type", param=where)
    return value


def check(body: dict[str, Any]) -> str:
    """The shape checks every Responses request gets (whichever deployment answers it);
    returns the requested model."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a string", param="model")
    given = body.get("input")
    if given is None and body.get("previous_response_id") is None:
        raise InvalidRequest("'input' is required", param="input")
    if given is not None and not isinstance(given, str | list):
        raise InvalidRequest("'input' must be a string or an array of items", param="input")
    for name in ("instructions", "previous_response_id", "prompt_cache_key", "user"):
        if body.get(name) is not None:
            _expect(body[name], str, name)
    for name in ("stream", "store", "parallel_tool_calls", "background"):
        if body.get(name) is not None:
            _expect(body[name], bool, name)
    for name in ("text", "reasoning", "metadata", "stream_options"):
        if body.get(name) is not None:
            _expect(body[name], dict, name)
    for name in ("tools", "include"):
        if body.get(name) is not None:
            _expect(body[name], list, name)
    tokens = body.get("max_output_tokens")
    if tokens is not None and (
        not isinstance(tokens, int) or isinstance(tokens, bool) or not 1 <= tokens <= 2**31 - 1
    ):
        raise InvalidRequest(
            "'max_output_tokens' must be an integer between 1 and 2147483647",
            param="max_output_tokens",
        )
    return model


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    parts = _parts(content, where)
    return "".join(p["text"] for p in parts if p["type"] == "text")


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    """Responses content parts as chat content parts."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    _expect(content, list, where)
    out: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        at = f"{where}[{index}]"
        _expect(part, dict, at)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text", "summary_text"):
            out.append({"type": "text", "text": _expect(part.get("text"), str, f"{at}.text")})
        elif kind == "refusal":
            out.append({"type": "text", "text": _expect(part.get("refusal"), str, f"{at}.refusal")})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise _refuse("an input_image without 'image_url' (a file_id)", at)
            image: dict[str, Any] = {"url": url}
            if isinstance(part.get("detail"), str):
                image["detail"] = part["detail"]
            out.append({"type": "image_url", "image_url": image})
        else:
            raise _refuse(f"a content part of type {kind!r}", at)
    return out


def _arguments(value: Any, where: str) -> str:
    return _expect(value, str, where)  # type: ignore[no-any-return]


def input_messages(given: Any) -> list[dict[str, Any]]:
    """The chat messages of a request's ``input`` (a string or items)."""
    if given is None:
        return []
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    messages: list[dict[str, Any]] = []

    def calling() -> list[dict[str, Any]]:
        """The assistant turn a tool call joins: the last one when it is the last message."""
        if messages and messages[-1]["role"] == "assistant":
            last = messages[-1]
        else:
            last = {"role": "assistant", "content": None}
            messages.append(last)
        calls: list[dict[str, Any]] = last.setdefault("tool_calls", [])
        return calls

    for index, item in enumerate(given):
        at = f"input[{index}]"
        _expect(item, dict, at)
        kind = item.get("type", "message")
        if kind == "message":
            role = ROLES.get(str(item.get("role")))
            if role is None:
                raise InvalidRequest(f"'{at}.role' is not a known role", param=f"{at}.role")
            content = item.get("content")
            if role == "user":
                messages.append({"role": role, "content": _parts(content, f"{at}.content")})
            else:
                messages.append({"role": role, "content": _text_of(content, f"{at}.content")})
        elif kind in ("function_call", "custom_tool_call"):
            call_id = _expect(item.get("call_id"), str, f"{at}.call_id")
            name = _expect(item.get("name"), str, f"{at}.name")
            space = item.get("namespace")
            name = flat_name(space if isinstance(space, str) else None, name)
            if kind == "function_call":
                arguments = _arguments(item.get("arguments"), f"{at}.arguments")
            else:
                raw = _expect(item.get("input"), str, f"{at}.input")
                arguments = json.dumps({CUSTOM_INPUT: raw})
            calling().append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            )
        elif kind in ("function_call_output", "custom_tool_call_output"):
            call_id = _expect(item.get("call_id"), str, f"{at}.call_id")
            output = item.get("output")
            text = output if isinstance(output, str) else _text_of(output, f"{at}.output")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
        elif kind == "reasoning":
            continue  # only the model that wrote it can read it back
        else:
            raise _refuse(f"an input item of type {kind!r}", at)
    return messages


class Tools:
    """What the translation back needs to know of the request's tools: which chat functions
    are custom (freeform) tools, which stand for a function in a namespace (``flat`` name ->
    (namespace, name)), and which hosted tools were not offered to the model."""

    __slots__ = ("custom", "ignored", "namespaced")

    def __init__(self) -> None:
        self.custom: set[str] = set()
        self.namespaced: dict[str, tuple[str, str]] = {}
        self.ignored: list[str] = []

    def item(self, flat: str) -> tuple[str, str | None]:
        """The Responses name and namespace of chat function ``flat``."""
        found = self.namespaced.get(flat)
        return (found[1], found[0]) if found is not None else (flat, None)


def flat_name(namespace: str | None, name: str) -> str:
    return f"{namespace}{NAMESPACE_JOIN}{name}" if namespace else name


def _function(tool: dict[str, Any], at: str, name: str) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name}
    for field in ("description", "parameters", "strict"):
        if tool.get(field) is not None:
            function[field] = tool[field]
    return {"type": "function", "function": function}


def _tools(tools: list[Any]) -> tuple[list[dict[str, Any]], Tools]:
    """Chat tools, and what their translation back needs."""
    out: list[dict[str, Any]] = []
    known = Tools()
    custom = known.custom
    for index, tool in enumerate(tools):
        at = f"tools[{index}]"
        _expect(tool, dict, at)
        kind = tool.get("type")
        name = tool.get("name")
        if kind == "function":
            out.append(_function(tool, at, _expect(name, str, f"{at}.name")))
        elif kind == "namespace":
            space = _expect(name, str, f"{at}.name")
            for inner, member in enumerate(_expect(tool.get("tools"), list, f"{at}.tools")):
                where = f"{at}.tools[{inner}]"
                _expect(member, dict, where)
                if member.get("type") != "function":
                    raise _refuse(f"a namespace tool of type {member.get('type')!r}", where)
                own = _expect(member.get("name"), str, f"{where}.name")
                flat = flat_name(space, own)
                known.namespaced[flat] = (space, own)
                out.append(_function(member, where, flat))
        elif kind in HOSTED_IGNORED:
            known.ignored.append(str(kind))
        elif kind == "custom":
            custom.add(_expect(name, str, f"{at}.name"))
            parameters = {
                "type": "object",
                "properties": {CUSTOM_INPUT: {"type": "string"}},
                "required": [CUSTOM_INPUT],
                "additionalProperties": False,
            }
            function: dict[str, Any] = {"name": name, "parameters": parameters}
            if isinstance(tool.get("description"), str):
                function["description"] = tool["description"]
            out.append({"type": "function", "function": function})
        else:
            raise _refuse(f"a tool of type {kind!r}", at)
    return out, known


def _tool_choice(choice: Any) -> Any:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") in ("function", "custom"):
        name = _expect(choice.get("name"), str, "tool_choice.name")
        space = choice.get("namespace")
        flat = flat_name(space if isinstance(space, str) else None, name)
        return {"type": "function", "function": {"name": flat}}
    raise _refuse("this 'tool_choice'", "tool_choice")


def _response_format(text: dict[str, Any]) -> dict[str, Any] | None:
    spec = text.get("format")
    if spec is None:
        return None
    _expect(spec, dict, "text.format")
    kind = spec.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema: dict[str, Any] = {
            "name": _expect(spec.get("name", "response"), str, "text.format.name"),
            "schema": _expect(spec.get("schema"), dict, "text.format.schema"),
        }
        for field in ("strict", "description"):
            if spec.get(field) is not None:
                schema[field] = spec[field]
        return {"type": "json_schema", "json_schema": schema}
    raise _refuse(f"text.format of type {kind!r}", "text.format.type")


class Translation:
    """A Responses request as a chat-completions request, with what the answer's translation
    back needs (``tools``)."""

    __slots__ = ("chat", "tools", "turn")

    def __init__(self, chat: dict[str, Any], tools: Tools, turn: list[dict[str, Any]]):
        self.chat = chat
        self.tools = tools
        self.turn = turn  # this request's own input as chat messages (kept for a follow-up)


def request_to_chat(body: dict[str, Any], history: list[dict[str, Any]]) -> Translation:
    """The chat-completions body for ``body``, after the earlier turns in ``history`` (chat
    messages kept from the response that ``previous_response_id`` names)."""
    for name, off in PASS_THROUGH_ONLY.items():
        if body.get(name) not in (None, off):
            raise _refuse(f"'{name}'", name)
    turn = input_messages(body.get("input"))
    messages = list(history) + turn
    if isinstance(body.get("instructions"), str):
        messages.insert(0, {"role": "system", "content": body["instructions"]})
    chat: dict[str, Any] = {"model": body["model"], "messages": messages}
    tools = Tools()
    if body.get("tools"):
        offered, tools = _tools(body["tools"])
        if offered:
            chat["tools"] = offered
    choice = _tool_choice(body.get("tool_choice"))
    if choice is not None:
        chat["tool_choice"] = choice
    for src, dst in (
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("parallel_tool_calls", "parallel_tool_calls"),
        ("max_output_tokens", "max_tokens"),
        ("user", "user"),
        ("metadata", "metadata"),
    ):
        if body.get(src) is not None:
            chat[dst] = body[src]
    text = body.get("text")
    if isinstance(text, dict):
        response_format = _response_format(text)
        if response_format is not None:
            chat["response_format"] = response_format
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
        chat["reasoning_effort"] = reasoning["effort"]
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    if "tools" not in chat:
        chat.pop("tool_choice", None)  # nothing left to choose from (only hosted tools)
        chat.pop("parallel_tool_calls", None)
    return Translation(chat, tools, turn)
