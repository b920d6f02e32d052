"""A client speaking Anthropic Messages: its request checked, and translated for deployments
that do not speak Anthropic.

An Anthropic deployment gets the client's body as written (``native``). Every other deployment
gets the internal (OpenAI chat) body made here, and what that body cannot carry is sorted in two:

- ``ignored``: fields whose loss leaves the answer's meaning as asked. A translated deployment
  answers without them, and the answer names them in ``x-sealgate-ignored`` (never silently):
  ``cache_control`` (a price and latency hint), ``thinking`` and ``output_config.effort`` (how
  long the model reasons, not what it answers), thinking blocks in the history (the model's own
  earlier reasoning), ``context_management``, ``service_tier``, ``speed``, ``diagnostics``,
  ``user_profile_id``, ``metadata`` other than ``user_id``, the ``anthropic-beta`` header.
- ``refused``: fields whose loss would change what the client asked for. A translated
  deployment refuses the request with a 400 that names them: server tools (web search, code
  execution, ...: the upstream would run them, an OpenAI deployment cannot), ``top_k``,
  ``container``, ``mcp_servers``, ``inference_geo``, ``output_format``, a document given by URL,
  an image in a tool result, a block type it has no equivalent for.

    Anthropic                         OpenAI chat
    system (string or text blocks)    a system message first
    a system-role message             a system message in the same place
    text / image blocks               text / image_url parts
    document (base64 PDF)             a file part (file_data)
    document (text or content)        text parts
    tool_use / tool_result            assistant tool_calls / tool messages
    output_config.format              response_format (json_schema)
    metadata.user_id                  user
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.errors import InvalidRequest
from gateway.values import Usage
from gateway.wire import openai
from gateway.wire.anthropic import vocabulary as v
from gateway.wire.anthropic.native import message_id, server_tools

SAMPLING = ("temperature", "top_p")
# The Anthropic request fields the gateway accepts (anything else is refused by name).
FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "metadata",
        "stream",
        "thinking",
        "cache_control",
        "context_management",
        "output_config",
        "service_tier",
        "container",
        "mcp_servers",
        "diagnostics",
        "inference_geo",
        "speed",
        "user_profile_id",
        "output_format",
    }
)
# Anthropic fields that steer the operator's account (which workspace, bill or model list), set
# by the operator and never by a client.
STEERING = frozenset({"workspace_id", "billing_policy", "fallback_credit_token", "fallbacks"})
# The fields of a count_tokens request (the Messages request without what only generation uses).
COUNT_FIELDS = FIELDS - {
    "max_tokens",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "stream",
    "metadata",
    "service_tier",
    "container",
}
# Top-level fields a translated deployment refuses (their loss changes the answer; where the
# inference runs, ``inference_geo``, may be a residency requirement).
REFUSED_FIELDS = ("top_k", "container", "mcp_servers", "inference_geo", "output_format")
# Top-level fields a translated deployment answers without (see the module docstring).
IGNORED_FIELDS = (
    "thinking",
    "cache_control",
    "context_management",
    "service_tier",
    "diagnostics",
    "speed",
    "user_profile_id",
)

# What each block type must carry, and of which type, for the gateway to read it.
BLOCK_FIELDS: dict[str, tuple[tuple[str, type], ...]] = {
    "text": (("text", str),),
    "image": (("source", dict),),
    "document": (("source", dict),),
    "tool_use": (("id", str), ("name", str), ("input", dict)),
    "tool_result": (("tool_use_id", str),),
    "thinking": (("thinking", str), ("signature", str)),
    "redacted_thinking": (("data", str),),
}
SOURCE_FIELDS = {
    "base64": (("media_type", str), ("data", str)),
    "url": (("url", str),),
    "text": (("data", str),),
    "content": (),
}
ROLES = ("user", "assistant", "system")


@dataclass
class Translated:
    """The internal body for a translated deployment, with what it leaves out (by name)."""

    body: dict[str, Any]
    ignored: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def ignore(self, name: str) -> None:
        if name not in self.ignored:
            self.ignored.append(name)

    def refuse(self, name: str) -> None:
        if name not in self.refused:
            self.refused.append(name)

    def refusal(self, why: str) -> InvalidRequest | None:
        """The 400 for a translated attempt (``why`` it is translated), or None when the
        translation can serve the request."""
        if not self.refused:
            return None
        names = ", ".join(self.refused)
        return InvalidRequest(
            f"{why}, and the request uses what a translation cannot serve without changing its "
            f"meaning: {names}",
            param=self.refused[0].split(" ")[0],
            code="unsupported_parameter",
        )


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
        if block["type"] in ("image", "document"):
            kind = block["source"].get("type")
            _fields(block["source"], SOURCE_FIELDS.get(kind, ()), f"{at}.source")
        if block["type"] == "tool_result" and block.get("content") is not None:
            check_blocks(block["content"], f"{at}.content")
        if block.get("is_error") is not None and not isinstance(block["is_error"], bool):
            raise _invalid(f"{at}.is_error", "a boolean")
        if block.get("cache_control") is not None and not isinstance(block["cache_control"], dict):
            raise _invalid(f"{at}.cache_control", "an object")
    return blocks


def refuse_steering(raw: dict[str, Any]) -> None:
    """Refuse, by name, a field that steers the operator's Anthropic account."""
    for name in raw:
        if name in STEERING:
            raise InvalidRequest(
                f"'{name}' is not accepted: the upstream account, its workspace, billing and "
                "models are set by the gateway's operator",
                param=name,
                code="forbidden_parameter",
            )


def check(raw: dict[str, Any], count: bool = False) -> None:
    """The shapes of the fields every path reads (a native body is checked the same way)."""
    if not count:
        max_tokens = raw.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise InvalidRequest(
                "'max_tokens' is required and must be a positive integer", param="max_tokens"
            )
    turns = raw.get("messages")
    if not isinstance(turns, list) or not turns:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict) or turn.get("role") not in ROLES:
            raise InvalidRequest(
                f"messages[{index}] needs role 'user', 'assistant' or 'system'",
                param=f"messages[{index}]",
            )
        check_blocks(turn.get("content"), f"messages[{index}].content")
    if raw.get("system") is not None:
        check_blocks(raw["system"], "system")
    if not isinstance(raw.get("model"), str) or not raw["model"]:
        raise InvalidRequest("'model' is required and must be a string", param="model")
    tools = raw.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise InvalidRequest("'tools' must be an array of objects", param="tools")
        for index, tool in enumerate(tools):
            _fields(tool, (("name", str),), f"tools[{index}]")
            for name, kind in (("description", str), ("input_schema", dict)):
                if tool.get(name) is not None and not isinstance(tool[name], kind):
                    what = "a string" if kind is str else "an object"
                    raise _invalid(f"tools[{index}].{name}", what)
    if raw.get("stream") is not None and not isinstance(raw["stream"], bool):
        raise _invalid("stream", "a boolean")
    thinking = raw.get("thinking")
    if thinking is not None and (
        not isinstance(thinking, dict) or not isinstance(thinking.get("type"), str)
    ):
        raise _invalid("thinking", "an object with a string 'type' (enabled, adaptive, ...)")
    for name in ("metadata", "context_management", "output_config", "cache_control"):
        if raw.get(name) is not None and not isinstance(raw[name], dict):
            raise _invalid(name, "an object")
    if raw.get("top_k") is not None and (
        not isinstance(raw["top_k"], int) or isinstance(raw["top_k"], bool) or raw["top_k"] < 0
    ):
        raise _invalid("top_k", "a non-negative integer")


def _cached(out: Translated, item: dict[str, Any]) -> None:
    if item.get("cache_control") is not None:
        out.ignore("cache_control")


def _document(block: dict[str, Any], out: Translated) -> list[dict[str, Any]]:
    source = block["source"]
    kind = source.get("type")
    if kind == "base64" and source.get("media_type") == "application/pdf":
        name = block.get("title") if isinstance(block.get("title"), str) else "document.pdf"
        data = f"data:application/pdf;base64,{source['data']}"
        return [{"type": "file", "file": {"filename": name, "file_data": data}}]
    if kind == "text":
        return [{"type": "text", "text": source["data"]}]
    if kind == "content":
        return [{"type": "text", "text": v.text_of_blocks(source.get("content"))}]
    out.refuse(f"document source {kind!r}")
    return []


def _parts(blocks: list[dict[str, Any]], out: Translated, where: str) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for block in blocks:
        _cached(out, block)
        kind = block["type"]
        if kind in ("text", "image"):
            parts.append(v.part_of(block))
        elif kind == "document":
            parts += _document(block, out)
        elif kind in ("thinking", "redacted_thinking"):
            out.ignore("thinking blocks")
        else:
            out.refuse(f"{where} block {kind!r}")
    return parts


def _tool_result(block: dict[str, Any], out: Translated) -> dict[str, Any]:
    content = block.get("content")
    if isinstance(content, list):
        for item in content:
            _cached(out, item)
            if item.get("type") != "text":
                out.refuse(f"tool_result block {item.get('type')!r}")
    text = v.text_of_blocks(content)
    if block.get("is_error"):
        text = text or "error"
    return {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text}


def _blocks(content: Any) -> list[dict[str, Any]]:
    """Content ``check`` has already checked, as a list of blocks."""
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _messages(raw: dict[str, Any], out: Translated) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if raw.get("system") is not None:
        blocks = _blocks(raw["system"])
        for block in blocks:
            _cached(out, block)
        system = v.text_of_blocks(blocks)
        if system:
            messages.append({"role": "system", "content": system})
    for turn in raw["messages"]:
        blocks = _blocks(turn.get("content"))
        role = turn["role"]
        if role == "system":
            for block in blocks:
                _cached(out, block)
            messages.append({"role": "system", "content": v.text_of_blocks(blocks)})
            continue
        if role == "assistant":
            text_blocks = [b for b in blocks if b["type"] != "tool_use"]
            text = "".join(p.get("text", "") for p in _parts(text_blocks, out, "assistant"))
            calls = []
            for b in blocks:
                if b["type"] == "tool_use":
                    _cached(out, b)
                    calls.append(v.tool_call(b))
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                message["tool_calls"] = calls
            messages.append(message)
            continue
        pending: list[dict[str, Any]] = []
        for block in blocks:
            if block["type"] == "tool_result":
                _cached(out, block)
                messages.append(_tool_result(block, out))
            else:
                pending.append(block)
        parts = _parts(pending, out, "user")
        if parts:
            messages.append({"role": "user", "content": parts})
    return messages


def translate(raw: dict[str, Any]) -> Translated:
    """A checked Anthropic Messages request (``check``) as the internal (OpenAI chat) body."""
    out = Translated({"model": raw["model"]})
    body = out.body
    body["messages"] = _messages(raw, out)
    if raw.get("max_tokens") is not None:
        body["max_tokens"] = raw["max_tokens"]
    for name in SAMPLING:
        if raw.get(name) is not None:
            body[name] = raw[name]
    if raw.get("stop_sequences"):
        body["stop"] = raw["stop_sequences"]
    for name in REFUSED_FIELDS:
        if raw.get(name) is not None:
            out.refuse(name)
    for name in IGNORED_FIELDS:
        if raw.get(name) is not None:
            out.ignore(name)
    tools = raw.get("tools") or []
    for kind in server_tools(tools):
        out.refuse(f"server tool {kind!r}")
    functions = [t for t in tools if t.get("type") in (None, "custom")]
    for tool in functions:
        _cached(out, tool)
    if functions:
        body["tools"] = v.tools_to_openai(functions)
    if raw.get("tool_choice") is not None:
        body["tool_choice"], parallel = v.tool_choice_to_openai(raw["tool_choice"])
        if parallel is not None:
            body["parallel_tool_calls"] = parallel
    metadata = raw.get("metadata") or {}
    if isinstance(metadata.get("user_id"), str):
        body["user"] = metadata["user_id"]
    if any(k != "user_id" for k in metadata):
        out.ignore("metadata")
    config = raw.get("output_config") or {}
    for name, value in config.items():
        if name == "format" and isinstance(value, dict) and value.get("type") == "json_schema":
            schema = value.get("schema") if isinstance(value.get("schema"), dict) else {}
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": schema, "strict": True},
            }
        elif name == "effort":
            out.ignore("output_config.effort")
        else:
            out.refuse(f"output_config.{name}")
    if raw.get("stream"):
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
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
        "id": message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": v.stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.prompt_tokens - usage.cached_tokens,
            "output_tokens": usage.completion_tokens,
            "cache_read_input_tokens": usage.cached_tokens,
            "cache_creation_input_tokens": 0,
        },
    }
