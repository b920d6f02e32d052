"""A translated upstream (Anthropic, Cohere, Gemini, Bedrock) hands its chat chunks to the
Responses and Messages translators parsed (``values.parsed_chunks``; issue 14's performance
item) instead of as bytes they parse again: the bytes a client gets are the same either way, for
every recorded stream of each provider, and the chunks handed over are what ``json.loads``
makes of the bytes the same stream writes for chat. A stream that offers only bytes (a
guardrail rewrites them) is read from its bytes, as before. Replayed in process (no network)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gateway.config import MAX_EVENT_BYTES
from gateway.providers import http
from gateway.providers.bedrock import BedrockUpstreamStream
from gateway.values import END, Stream, Usage, parsed_chunks
from gateway.wire import bedrock, cohere, gemini, openai
from gateway.wire import responses as wire
from gateway.wire.anthropic.streams import AnthropicEventStream, UpstreamEventTranslator
from gateway.wire.sse import EventReader
from tests.support import eventstream, recorded
from tests.support.replayed import DEPLOYMENT, ReplayedResponse, drained, run_now

CREATED = 1_764_000_000
IDS = re.compile(rb"\b(resp|msg|fc|ctc|call)_[0-9a-f]{32}\b")
CLOCK = re.compile(rb'"created_at": \d+')


def anthropic_stream(name: str) -> Stream:
    translator = UpstreamEventTranslator("m", True)
    translator.created = CREATED
    pieces = [
        f"event: {e['event']}\ndata: {json.dumps(e['data'])}\n\n".encode()
        for e in recorded.reply("anthropic", name)
    ]
    return http.TranslatedStream(
        ReplayedResponse(pieces),  # type: ignore[arg-type]
        DEPLOYMENT,
        translator,
        lambda e: translator.feed(e.name, e.data),
    )


def cohere_stream(name: str) -> Stream:
    translator = cohere.CohereStreamTranslator("m", True)
    translator.created = CREATED
    translator.id = "chatcmpl-1"  # random for each stream: the same for the two compared
    pieces = [
        f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode()
        for e in recorded.reply("cohere", name)
    ]
    return http.TranslatedStream(
        ReplayedResponse(pieces),  # type: ignore[arg-type]
        DEPLOYMENT,
        translator,
        lambda e: translator.feed(e.data),
    )


def gemini_stream(name: str) -> Stream:
    translator = gemini.StreamTranslator("m", True)
    translator.created = CREATED
    pieces = [f"data: {json.dumps(e)}\n\n".encode() for e in recorded.reply("google", name)]
    return http.TranslatedStream(
        ReplayedResponse(pieces),  # type: ignore[arg-type]
        DEPLOYMENT,
        translator,
        lambda e: translator.feed(e.data),
        translator.end,
    )


def bedrock_stream(name: str) -> Stream:
    translator = bedrock.ConverseStreamTranslator("m", True)
    translator.created = CREATED
    translator.id = "chatcmpl-1"  # random for each stream: the same for the two compared
    pieces = [eventstream.event(e["event"], e["data"]) for e in recorded.reply("bedrock", name)]
    return BedrockUpstreamStream(
        ReplayedResponse(pieces),  # type: ignore[arg-type]
        DEPLOYMENT,
        translator,
    )


PROVIDERS: dict[str, tuple[Callable[[str], Stream], list[str]]] = {
    "anthropic": (anthropic_stream, ["stream", "stream_tool_use", "stream_thinking"]),
    "cohere": (cohere_stream, ["chat_stream", "chat_stream_tool_call"]),
    "gemini": (
        gemini_stream,
        [
            "stream_generate_content",
            "stream_generate_content_function_call",
            "stream_generate_content_safety",
        ],
    ),
    "bedrock": (bedrock_stream, ["converse_stream", "converse_stream_tool_use"]),
}
CASES = [(p, name) for p, (_, names) in PROVIDERS.items() for name in names]


class BytesOnly:
    """A stream that passes its inner stream's bytes on and offers no parsed chunks (what a
    guardrail's stream looks like to the translator)."""

    def __init__(self, inner: Stream) -> None:
        self._inner = inner

    @property
    def usage(self) -> Usage | None:
        return self._inner.usage

    def chunks(self) -> AsyncIterator[bytes]:
        return self._inner.chunks()

    async def aclose(self) -> None:
        await self._inner.aclose()


def made(provider: str, name: str) -> Stream:
    return PROVIDERS[provider][0](name)


def normalised(data: bytes) -> bytes:
    seen: dict[bytes, bytes] = {}

    def named(found: re.Match[bytes]) -> bytes:
        return seen.setdefault(found.group(0), found.group(1) + b"_%d" % len(seen))

    return CLOCK.sub(b'"created_at": 0', IDS.sub(named, data))


def responses_bytes(inner: Stream) -> list[bytes]:
    body = {"model": "m", "input": "hi", "stream": True}
    events = wire.ResponsesEventStream(inner, body, wire.Tools(), wire.new_id("resp"))
    return [normalised(piece) for piece in run_now(drained(events))]


def messages_bytes(inner: Stream) -> list[bytes]:
    return run_now(drained(AnthropicEventStream(inner, "m", 11)))


@pytest.mark.parametrize(("provider", "name"), CASES)
def test_a_translated_upstream_offers_its_chunks_parsed(provider: str, name: str) -> None:
    assert parsed_chunks(made(provider, name)) is not None
    assert parsed_chunks(BytesOnly(made(provider, name))) is None


@pytest.mark.parametrize(("provider", "name"), CASES)
def test_the_chunks_handed_over_are_the_parse_of_the_chat_bytes(provider: str, name: str) -> None:
    written = b"".join(run_now(drained(made(provider, name))))
    framed = [openai.parsed_item(e.data) for e in EventReader(MAX_EVENT_BYTES).feed(written)]

    async def handed(stream: Stream) -> list[Any]:
        batches = parsed_chunks(stream)
        assert batches is not None
        return [chunk async for batch in batches for chunk in batch]

    over = run_now(handed(made(provider, name)))
    assert over == framed and over[-1] is END
    assert json.dumps(over[:-1]) == json.dumps(framed[:-1])  # key order too


@pytest.mark.parametrize(("provider", "name"), CASES)
def test_a_responses_stream_is_the_same_bytes_with_and_without_the_handover(
    provider: str, name: str
) -> None:
    handed = responses_bytes(made(provider, name))
    assert handed == responses_bytes(BytesOnly(made(provider, name)))
    assert b"response.completed" in handed[-1] or b"response.incomplete" in handed[-1]


@pytest.mark.parametrize(("provider", "name"), CASES)
def test_a_messages_stream_is_the_same_bytes_with_and_without_the_handover(
    provider: str, name: str
) -> None:
    handed = messages_bytes(made(provider, name))
    assert handed == messages_bytes(BytesOnly(made(provider, name)))
    assert b"message_stop" in b"".join(handed)


@pytest.mark.parametrize(("provider", "name"), CASES)
def test_the_usage_is_the_same_with_and_without_the_handover(provider: str, name: str) -> None:
    handed, plain = made(provider, name), made(provider, name)
    responses_bytes(handed), responses_bytes(BytesOnly(plain))
    assert handed.usage == plain.usage
