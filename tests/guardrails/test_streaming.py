"""The stream stage on its own (pure: a scripted upstream stream of OpenAI chunks, no server): a
match split anywhere over chunks is masked whole, the text held back stays within the documented
bound, and a chunk whose text is held back is not sent empty."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from gateway.errors import GuardrailBlocked
from gateway.guardrails.policy import default_policy
from gateway.guardrails.streaming import HOLD, GuardedStream
from gateway.values import Usage

pytestmark = pytest.mark.anyio


def chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class Scripted:
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.usage: Usage | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece

    async def aclose(self) -> None:
        pass


async def run(pieces: list[bytes]) -> tuple[list[str], Counter[str]]:
    """The text of each chunk event the guarded stream sent, and what it reported finding."""
    found: Counter[str] = Counter()
    stream = GuardedStream(Scripted(pieces), default_policy(), lambda seen, _: found.update(seen))
    texts = []
    async for out in stream.chunks():
        for event in out.split(b"\n\n"):
            if event.startswith(b"data: {"):
                choices = json.loads(event[6:])["choices"]
                texts.append("".join(c["delta"].get("content", "") for c in choices))
    return texts, found


async def test_a_card_number_split_at_any_point_over_two_chunks_is_masked_whole() -> None:
    text = "my card is 4111 1111 1111 1111 ok"
    for cut in range(1, len(text)):
        texts, found = await run(
            [chunk(text[:cut]), chunk(text[cut:]), chunk(finish="stop"), b"data: [DONE]\n\n"]
        )
        assert "".join(texts) == "my card is [CARD] ok", cut
        assert found == Counter({"card": 1})


async def test_text_goes_out_while_it_streams_holding_back_at_most_the_bound() -> None:
    words = [f"word{i} " for i in range(2000)]
    sent: list[int] = []
    found: Counter[str] = Counter()
    stream = GuardedStream(
        Scripted([chunk(w) for w in words]), default_policy(), lambda seen, _: found.update(seen)
    )
    total_in = 0
    async for out in stream.chunks():
        total_in += 1
        text = "".join(
            c["delta"].get("content", "")
            for event in out.split(b"\n\n")
            if event.startswith(b"data: {")
            for c in json.loads(event[6:])["choices"]
        )
        sent.append(len(text))
    produced = sum(len(w) for w in words)
    assert produced - sum(sent) <= HOLD  # held at the end, released by no finish chunk here
    assert sum(sent[: len(sent) // 2]) > 0  # text went out well before the end


async def test_a_secret_completed_in_a_later_chunk_ends_the_stream_blocked() -> None:
    pieces = [chunk("key: sk-proj-Zx9Qw3Er7"), chunk("Ty1Ui5Op0As2Df4Gh6Jk8Lm"), chunk(" done")]
    with pytest.raises(GuardrailBlocked) as caught:
        await run(pieces)
    assert caught.value.detector == "openai_key"


def tool_chunk(arguments: str | None, finish: str | None = None, call: int = 0) -> bytes:
    delta: dict[str, object] = {}
    if arguments is not None:
        delta["tool_calls"] = [{"index": call, "function": {"arguments": arguments}}]
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
    return b"data: " + json.dumps(body).encode() + b"\n\n"


async def arguments_sent(pieces: list[bytes]) -> tuple[dict[int, str], Counter[str]]:
    """Each tool call's arguments as a client joins them, and what the stream reported."""
    found: Counter[str] = Counter()
    stream = GuardedStream(Scripted(pieces), default_policy(), lambda seen, _: found.update(seen))
    joined: dict[int, str] = {}
    async for out in stream.chunks():
        for event in out.split(b"\n\n"):
            if event.startswith(b"data: {"):
                for choice in json.loads(event[6:])["choices"]:
                    for call in choice["delta"].get("tool_calls") or []:
                        piece = call["function"].get("arguments", "")
                        joined[call["index"]] = joined.get(call["index"], "") + piece
    return joined, found


async def test_a_card_number_split_over_two_tool_call_argument_deltas_is_masked_whole() -> None:
    arguments = json.dumps({"card": "4111 1111 1111 1111", "note": "pay"})
    for cut in range(1, len(arguments)):
        joined, found = await arguments_sent(
            [
                tool_chunk(arguments[:cut]),
                tool_chunk(arguments[cut:]),
                tool_chunk(None, finish="tool_calls"),
                b"data: [DONE]\n\n",
            ]
        )
        assert json.loads(joined[0]) == {"card": "[CARD]", "note": "pay"}, cut
        assert found == Counter({"card": 1})


async def test_each_tool_call_is_held_on_its_own_and_a_stream_cut_short_still_releases_them() -> (
    None
):
    first, second = json.dumps({"mail": "jane.roe@example.com"}), json.dumps({"q": "weather"})
    joined, _ = await arguments_sent(
        [
            tool_chunk(first[:12], call=0),
            tool_chunk(second[:5], call=1),
            tool_chunk(first[12:], call=0),
            tool_chunk(second[5:], call=1),
        ]
    )  # no finish, no [DONE]: the end of the stream releases what is held
    assert json.loads(joined[0]) == {"mail": "[EMAIL]"}
    assert json.loads(joined[1]) == {"q": "weather"}


async def test_a_secret_in_streamed_tool_call_arguments_ends_the_stream_blocked() -> None:
    with pytest.raises(GuardrailBlocked):
        await arguments_sent(
            [tool_chunk('{"key": "sk-proj-Zx9Qw3Er7Ty1'), tool_chunk('Ui5Op0As2Df4Gh6Jk8Lm"}')]
        )
