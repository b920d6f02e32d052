"""The answers the in-process SDK returns: typed, OpenAI-shaped objects (pydantic models).

The fields are those of OpenAI's chat completion and chunk objects; a field an upstream adds
that is not named here is kept (``extra="allow"``), so nothing of an answer is lost.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Shape(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Function(_Shape):
    name: str | None = None
    arguments: str | None = None


class ToolCall(_Shape):
    id: str | None = None
    type: str = "function"
    function: Function


class Message(_Shape):
    role: str = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None


class Choice(_Shape):
    index: int = 0
    message: Message
    finish_reason: str | None = None
    logprobs: Any = None


class PromptTokensDetails(_Shape):
    cached_tokens: int = 0


class Usage(_Shape):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None


class ChatCompletion(_Shape):
    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None


class ToolCallDelta(_Shape):
    index: int = 0
    id: str | None = None
    type: str | None = None
    function: Function | None = None


class Delta(_Shape):
    role: str | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(_Shape):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None


class ChatCompletionChunk(_Shape):
    id: str
    object: str = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
