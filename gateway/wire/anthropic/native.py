"""Anthropic Messages passed through to an Anthropic deployment, untranslated.

A client that speaks Anthropic and a deployment that speaks Anthropic need no translation: the
body goes on as the client wrote it (``thinking`` of every type, thinking blocks and their
signatures, ``cache_control``, ``document`` blocks, ``top_k``, server tools, ``context_management``,
``output_config``, ``metadata``), with only what the gateway owns changed:

- ``model`` becomes the deployment's upstream model (a ``system``-role message in the middle of
  ``messages``, as current Claude Code sends, goes on where it is);
- the ``anthropic-beta`` header keeps only the values the operator's allowlist names
  (``DEFAULT_BETAS`` unless the deployment sets ``anthropic_beta``); the others are not sent,
  and the answer says which in ``x-sealgate-ignored-beta``.

The answer and the stream come back as the upstream sent them; the gateway reads usage from them
(``message_start`` and ``message_delta``), and refuses a stream that reports an error or ends
without ``message_stop``. Pure: bytes and dicts in and out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from gateway.errors import UpstreamError
from gateway.values import Usage
from gateway.wire.anthropic import vocabulary as v
from gateway.wire.openai import count_of
from gateway.wire.sse import Event

# The ``anthropic-beta`` values forwarded when the deployment names no allowlist of its own.
# First, every one Claude Code 2.1.332 sends with an API key in ``claude -p`` (recorded through
# the fake upstream by tests/agents/test_claude_code.py, which fails if this stops covering
# them). Then beta names that same client carries for features a user can turn on (a 1M context,
# fast mode, structured outputs, web search, files, tool search, cache scope and TTL, redacted
# thinking, MCP servers, token counting), each found in its shipped binary. ``oauth-*`` is never
# in it: the gateway authenticates upstream with its own credential.
CLAUDE_CODE_BETAS = frozenset(
    {
        "claude-code-20250219",
        "interleaved-thinking-2025-05-14",
        "context-management-2025-06-27",
        "per-turn-control-2026-07-01",
        "mid-conversation-tool-changes-2026-07-01",
        "thinking-token-count-2026-05-13",
        "advanced-tool-use-2025-11-20",
        "effort-2025-11-24",
    }
)
DEFAULT_BETAS = CLAUDE_CODE_BETAS | {
    "context-1m-2025-08-07",
    "fast-mode-2026-02-01",
    "structured-outputs-2025-12-15",
    "web-search-2025-03-05",
    "files-api-2025-04-14",
    "tool-search-tool-2025-10-19",
    "prompt-caching-scope-2026-01-05",
    "extended-cache-ttl-2025-04-11",
    "redact-thinking-2026-02-12",
    "mid-conversation-system-2026-04-07",
    "mcp-servers-2025-12-04",
    "token-counting-2024-11-01",
}
BETA_HEADER = "anthropic-beta"
IGNORED_BETA_HEADER = b"x-sealgate-ignored-beta"

# Tool types that are the client's own functions; any other ``type`` is a server tool
# (web_search_*, web_fetch_*, code_execution_*, bash_*, text_editor_*, computer_*, ...).
CLIENT_TOOL_TYPES = frozenset({"custom"})


def server_tools(tools: Any) -> list[str]:
    """The types of the server tools in ``tools`` (tools the upstream runs itself)."""
    if not isinstance(tools, list):
        return []
    return [
        str(t["type"])
        for t in tools
        if isinstance(t, dict) and t.get("type") is not None and t["type"] not in CLIENT_TOOL_TYPES
    ]


# What a beta name looks like (``<feature>-YYYY-MM-DD``): only such a value is named back in
# ``x-sealgate-ignored-beta``; anything else a client put in the header is counted, never echoed.
BETA_NAME = re.compile(r"[a-z][a-z0-9-]{0,79}-\d{4}-\d{2}-\d{2}")


def ignored_betas(dropped: list[str]) -> str:
    """The ``x-sealgate-ignored-beta`` value: the beta names, and how many other values."""
    named = [d for d in dropped if BETA_NAME.fullmatch(d)]
    others = len(dropped) - len(named)
    return ",".join(named + ([f"({others} value(s) that are not beta names)"] if others else []))


def betas(header: bytes | None, allowed: Iterable[str]) -> tuple[list[str], list[str]]:
    """The comma-separated ``anthropic-beta`` values split into (forwarded, not forwarded)."""
    if not header:
        return [], []
    allow = frozenset(allowed)
    kept: list[str] = []
    dropped: list[str] = []
    for value in header.decode("latin-1").split(","):
        name = value.strip()
        if name:
            (kept if name in allow else dropped).append(name)
    return kept, dropped


def request(raw: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    """The client's Messages body as it goes to the deployment (see the module docstring)."""
    return {**raw, "model": upstream_model}


def usage_of_message(message: Any) -> Usage:
    """The usage of a Messages answer (cache reads and writes count as prompt tokens)."""
    return v.usage_of(message.get("usage") if isinstance(message, dict) else None)


def message_id(raw: Any) -> str:
    """An id as a Messages answer carries it: ``msg_`` once, whatever the upstream's id was."""
    text = str(raw or "")
    for prefix in ("chatcmpl-", "msg_"):
        text = text.removeprefix(prefix)
    return "msg_" + text


class NativeEventMonitor:
    """Watches an Anthropic upstream's events on their way to an Anthropic client: passes each
    one on byte for byte, reads usage from ``message_start`` and ``message_delta``, notes
    ``message_stop``, and raises UpstreamError on an ``error`` event or one that is not JSON."""

    def __init__(self) -> None:
        self.input = Usage()
        self.output_tokens = 0
        self.done = False

    @property
    def usage(self) -> Usage:
        return Usage(self.input.prompt_tokens, self.output_tokens, self.input.cached_tokens)

    def feed(self, event: Event) -> bytes:
        if event.data:
            try:
                self._read(json.loads(event.data), event.name.decode("latin-1"))
            except (ValueError, AttributeError, TypeError, RecursionError):
                raise UpstreamError("the upstream sent an invalid stream event") from None
        raw = event.raw
        return raw if raw.endswith(b"\n\n") or raw.endswith(b"\r\n\r\n") else raw + b"\n\n"

    def _read(self, payload: Any, name: str) -> None:
        kind = payload.get("type", name)
        if kind == "message_start":
            message = payload.get("message") or {}
            self.input = usage_of_message(message)
            self.output_tokens = count_of((message.get("usage") or {}).get("output_tokens"))
        elif kind == "message_delta":
            usage = payload.get("usage") or {}
            self.output_tokens = count_of(usage.get("output_tokens")) or self.output_tokens
            if usage.get("input_tokens") is not None:  # newer streams report it here too
                self.input = v.usage_of({**usage, "output_tokens": 0})
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            error = payload.get("error")
            reported = error.get("type") if isinstance(error, dict) else None
            known = reported if reported in v.UPSTREAM_ERROR_TYPES else None
            raise UpstreamError("the upstream reported an error mid-stream", code=known)
