"""The OpenAI Responses API (``POST /v1/responses``), translated to and from chat completions.

    requests   a Responses request as a chat-completions request (and the shape checks)
    answers    a chat answer as a Responses object; usage both ways
    streams    a chat stream re-emitted as the Responses event sequence


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

Deny by default: a field, item type or tool type this package does not know is refused with a 400
that names it, before anything is reserved or sent. Pure functions, no I/O.
"""

from __future__ import annotations

from gateway.wire.responses.answers import (
    envelope,
    error_event,
    new_id,
    output_messages,
    response_from_chat,
    usage_from,
    usage_json,
)
from gateway.wire.responses.requests import (
    FIELDS,
    Tools,
    Translation,
    check,
    input_messages,
    request_to_chat,
)
from gateway.wire.responses.streams import TEXT_DELTA, ResponsesEventStream, sse

__all__ = [
    "FIELDS",
    "TEXT_DELTA",
    "ResponsesEventStream",
    "Tools",
    "Translation",
    "check",
    "envelope",
    "error_event",
    "input_messages",
    "new_id",
    "output_messages",
    "request_to_chat",
    "response_from_chat",
    "sse",
    "usage_from",
    "usage_json",
]
