"""The OpenAI Responses API (``POST /v1/responses``), translated to and from chat completions.

OpenAI and Azure deployments get a Responses body as the client sent it (the provider adapter's
``responses``); every other deployment is called with the chat-completions body made here, and
its answer (or its stream of ``chat.completion.chunk`` events) is turned back into a Responses
object (or the Responses event sequence). What the translation does with each request field:

    input (string or items)     messages: a string is one user turn; ``message`` items keep their
                                role (``developer`` becomes ``system``), text and image parts;
                                ``function_call`` / ``custom_tool_call`` items become an assistant
                                turn's ``tool_calls``, their ``*_output`` items ``tool`` turns;
                                ``reasoning`` items are dropped (only the model that wrote them
                                can read them back)
    instructions                a ``system`` message first (not carried to a follow-up turn)
    tools                       ``function`` tools as they are; ``namespace`` tools as one function
                                each, named ``<namespace>__<name>``; ``custom`` tools (freeform
                                input, what the Codex CLI's apply_patch is) as a function taking
                                one string ``input``; ``web_search`` is not offered (said in the
                                ``x-sealgate-ignored-tools`` header); other tool types are refused
    tool_choice                 the same choice in chat's shape
    text.format                 ``response_format`` (json_schema, json_object)
    reasoning.effort            ``reasoning_effort``
    max_output_tokens           ``max_tokens``
    include, text.verbosity,    accepted and without effect: a translated deployment has no
    truncation, reasoning.      encrypted reasoning, logprobs or summaries to include
    summary, prompt_cache_key,
    store, service_tier

Deny by default: a field, item type or tool type this module does not know is refused with a 400
that names it, before anything is reserved or sent. Pure functions, no I/O.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from gateway.config import MAX_EVENT_BYTES
from gateway.errors import InvalidRequest, UpstreamError, UpstreamTooLarge
from gateway.values import Stream, Usage
from gateway.wire import openai
from gateway.wire.sse import EventReader, EventTooLarge

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


# -- a Responses request as a chat-completions request --------------------------------------------
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


# -- a chat answer as a Responses object ----------------------------------------------------------
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


def _call_item(call: dict[str, Any], tools: Tools) -> dict[str, Any]:
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


def _message_item(text: str, item_id: str | None = None) -> dict[str, Any]:
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
        output.append(_message_item(content))
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
    output += [_call_item(call, tools) for call in message.get("tool_calls") or []]
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


# -- streams --------------------------------------------------------------------------------------
TEXT_DELTA = (
    'event: response.output_text.delta\ndata: {"type": "response.output_text.delta", '
    '"item_id": "%s", "output_index": %d, "content_index": 0, "delta": %s, "logprobs": [], '
    '"sequence_number": %d}\n\n'
)


def sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: ".encode() + json.dumps({"type": kind, **data}).encode() + b"\n\n"


class ResponsesEventStream:
    """The internal chat stream (``chat.completion.chunk`` events) re-emitted to a client as
    the Responses event sequence: ``response.created``, ``response.in_progress``, each output
    item's ``added`` / deltas / ``done``, then ``response.completed`` (or ``.incomplete``) with
    usage. ``completed`` holds the final Responses object once the stream has ended."""

    def __init__(self, inner: Stream, body: dict[str, Any], tools: Tools, response_id: str) -> None:
        self._inner = inner
        self._body = body
        self._tools = tools
        self._id = response_id
        self._reader = EventReader(MAX_EVENT_BYTES)
        self._sequence = 0
        self._created = int(time.time())
        self._output: list[dict[str, Any]] = []
        self._text: dict[str, Any] | None = None  # the message item being written
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool_calls index -> item
        self._finish: str | None = None
        self.completed: dict[str, Any] | None = None

    @property
    def usage(self) -> Usage | None:
        return self._inner.usage

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        out = sse(kind, {**data, "sequence_number": self._sequence})
        self._sequence += 1
        return out

    def _snapshot(self, status: str) -> dict[str, Any]:
        answer = envelope(self._id, self._body, str(self._body["model"]), self._created, status)
        answer["output"] = self._output
        return answer

    async def chunks(self) -> AsyncIterator[bytes]:
        start = self._snapshot("in_progress")
        yield self._event("response.created", {"response": start}) + self._event(
            "response.in_progress", {"response": start}
        )
        async for piece in self._inner.chunks():
            try:
                events = self._reader.feed(piece)
            except EventTooLarge:
                raise UpstreamTooLarge("a stream event is larger than the gateway's cap") from None
            out: list[bytes] = []
            for event in events:
                out += self._feed(event.data)
            if out:
                yield b"".join(out)
        yield b"".join(self._finish_all())

    def _feed(self, data: bytes) -> list[bytes]:
        if not data or data == b"[DONE]":
            return []
        try:
            chunk = json.loads(data)
            out: list[bytes] = []
            for choice in chunk.get("choices") or []:
                out += self._choice(choice)
            return out
        except (ValueError, AttributeError, TypeError, KeyError, RecursionError):
            raise UpstreamError("the upstream sent an invalid stream event") from None

    def _choice(self, choice: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        delta = choice.get("delta") or {}
        text = delta.get("content")
        if isinstance(text, str) and text:
            if self._text is None:
                item = _message_item("")
                item["status"] = "in_progress"
                item["content"] = []
                self._text = {"item": item, "index": len(self._output), "text": []}
                self._output.append(item)
                out.append(self._added(item, self._text["index"]))
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                out.append(
                    self._event(
                        "response.content_part.added",
                        {**self._where(self._text), "content_index": 0, "part": part},
                    )
                )
            self._text["text"].append(text)
            out.append(self._text_delta(text))
        for call in delta.get("tool_calls") or []:
            out += self._call_delta(call)
        if choice.get("finish_reason"):
            self._finish = choice["finish_reason"]
        return out

    def _text_delta(self, text: str) -> bytes:
        """A ``response.output_text.delta`` event, the one a stream is mostly made of: written
        from a template (only the text is JSON-encoded), the same bytes ``_event`` would make."""
        assert self._text is not None
        state = self._text
        made = TEXT_DELTA % (state["item"]["id"], state["index"], json.dumps(text), self._sequence)
        self._sequence += 1
        return made.encode()

    def _where(self, state: dict[str, Any]) -> dict[str, Any]:
        return {"item_id": state["item"]["id"], "output_index": state["index"]}

    def _added(self, item: dict[str, Any], index: int) -> bytes:
        return self._event("response.output_item.added", {"output_index": index, "item": item})

    def _call_delta(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        index = call.get("index", 0)
        function = call.get("function") or {}
        state = self._calls.get(index)
        if state is None:
            name = function.get("name") or ""
            kind = "custom_tool_call" if name in self._tools.custom else "function_call"
            own, space = self._tools.item(name)
            item: dict[str, Any] = {
                "type": kind,
                "id": new_id("ctc" if kind == "custom_tool_call" else "fc"),
                "call_id": call.get("id") or new_id("call"),
                "name": own,
                "status": "in_progress",
            }
            if space is not None:
                item["namespace"] = space
            item["input" if kind == "custom_tool_call" else "arguments"] = ""
            state = {"item": item, "index": len(self._output), "arguments": []}
            self._calls[index] = state
            self._output.append(item)
            out.append(self._added(item, state["index"]))
        piece = function.get("arguments")
        if isinstance(piece, str) and piece:
            state["arguments"].append(piece)
            if state["item"]["type"] == "function_call":
                out.append(
                    self._event(
                        "response.function_call_arguments.delta",
                        {**self._where(state), "delta": piece},
                    )
                )
        return out

    def _finish_all(self) -> list[bytes]:
        out: list[bytes] = []
        if self._text is not None:
            state = self._text
            text = "".join(state["text"])
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            where = {**self._where(state), "content_index": 0}
            out.append(
                self._event("response.output_text.done", {**where, "text": text, "logprobs": []})
            )
            out.append(self._event("response.content_part.done", {**where, "part": part}))
            state["item"].update(status="completed", content=[part])
            out.append(self._done(state))
        for state in self._calls.values():
            arguments = "".join(state["arguments"])
            item = state["item"]
            if item["type"] == "function_call":
                item["arguments"] = arguments
                out.append(
                    self._event(
                        "response.function_call_arguments.done",
                        {**self._where(state), "arguments": arguments},
                    )
                )
            else:
                done = _call_item(
                    {
                        "id": item["call_id"],
                        "function": {"name": item["name"], "arguments": arguments},
                    },
                    self._tools,
                )
                item["input"] = done["input"]
            item["status"] = "completed"
            out.append(self._done(state))
        reason = FINISH.get(self._finish) if isinstance(self._finish, str) else None
        final = self._snapshot("incomplete" if reason else "completed")
        if reason:
            final["incomplete_details"] = {"reason": reason}
        final["usage"] = usage_json(self._inner.usage)
        self.completed = final
        kind = "response.incomplete" if reason else "response.completed"
        out.append(self._event(kind, {"response": final}))
        return out

    def _done(self, state: dict[str, Any]) -> bytes:
        return self._event(
            "response.output_item.done", {"output_index": state["index"], "item": state["item"]}
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


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
