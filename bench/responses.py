"""What the Responses API's translation adds per request over chat on the same (translated)
deployment, in process (no server, no network; issue 14 bounds it at 50 us):

- **chat**: what the chat route does with a body and an answer of its own: the field and shape
  checks (``check_chat``), and the answer's bytes go out as they came;
- **responses**: what ``/v1/responses`` does instead: its field and shape checks, the
  translation to chat (``request_to_chat``) and the chat checks on it, then the chat answer (as
  the adapter already parsed it, ``Reply.parsed``) written back as a Responses object;
- **responses stream**: the event translation (``ResponsesEventStream``) of a 20-delta chat
  stream with usage, against passing the same chunks on (chat's stream), three times: from an
  OpenAI-format upstream (vLLM and the like: ``OpenAIUpstreamStream`` reads the replayed SSE
  body on both sides, and hands the translator its chunks parsed); from an Anthropic upstream
  (a translated one: its ``TranslatedStream`` writes chat bytes for chat, and hands the same
  chunks over parsed to the translator); and from the chat stream's bytes (what a stream that
  offers only bytes, a guardrail's, hands on: framed and parsed again).

The two sides of each pair run interleaved, batch by batch, and the median batch per request is
printed in microseconds of CPU time (``time.process_time``: on a shared, loaded machine wall time
mostly measures the wait for a core) with the difference, beside the load average (compare
within one run).

    .venv-dev/bin/python -m bench.responses [--batch 2000] [--batches 15]

Instructions instead of time (the same on a loaded machine as on an idle one): ``--loop SIDE N``
runs one side N times after a warm-up and prints nothing; the difference of two callgrind runs
divided by the difference of their N is that side's instructions per request:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        .venv-dev/bin/python -m bench.responses --loop stream 200   # and 0, then subtract
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from gateway.api import validation
from gateway.providers import http
from gateway.values import Usage
from gateway.wire import openai
from gateway.wire import responses as wire
from gateway.wire.anthropic.streams import UpstreamEventTranslator
from tests.support.replayed import DEPLOYMENT, ReplayedResponse, upstream_stream

INSTRUCTIONS = "You are a helpful assistant."
QUESTION = "Summarise the quarterly report in three bullet points."
CHAT: dict[str, Any] = {
    "model": "m",
    "messages": [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": QUESTION},
    ],
    "temperature": 0.2,
    "max_tokens": 256,
}
RESPONSES: dict[str, Any] = {
    "model": "m",
    "instructions": INSTRUCTIONS,
    "input": [{"role": "user", "content": [{"type": "input_text", "text": QUESTION}]}],
    "temperature": 0.2,
    "max_output_tokens": 256,
}
ANSWER = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "- Revenue up\n- Costs flat\n- Hiring"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42},
    }
).encode()
PARSED = json.loads(ANSWER)  # what the adapter hands over with the answer's bytes
USAGE = Usage(30, 12)
DELTAS = 20


def chat_side() -> bytes:
    body = dict(CHAT)
    validation.check_chat(body)
    return ANSWER


def responses_side() -> bytes:
    body = dict(RESPONSES)
    validation.check_fields(body, wire.FIELDS)
    wire.check(body)
    translation = wire.request_to_chat(body, [])
    validation.check_chat(translation.chat)
    response = wire.response_from_chat(PARSED, body, translation.tools, USAGE, wire.new_id("resp"))
    return json.dumps(response).encode()


def chunks() -> list[bytes]:
    out = [openai.chunk("c", 1, "m", {"role": "assistant", "content": ""})]
    out += [openai.chunk("c", 1, "m", {"content": f"word{i} "}) for i in range(DELTAS)]
    out.append(openai.chunk("c", 1, "m", {}, "stop"))
    out.append(openai.usage_chunk("c", 1, "m", USAGE))
    out.append(openai.DONE)
    return out


def anthropic_pieces() -> list[bytes]:
    """An Anthropic upstream's stream of the same 20 deltas, an event per piece."""
    usage = {"input_tokens": USAGE.prompt_tokens, "output_tokens": 1}
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude"}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {**message, "content": [], "usage": usage}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": f"word{i} "},
            }
            for i in range(DELTAS)
        ),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": USAGE.completion_tokens},
        },
        {"type": "message_stop"},
    ]
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]


def anthropic_stream(pieces: list[bytes]) -> Any:
    """The Anthropic adapter's stream (``TranslatedStream``) over ``pieces``, no socket."""
    translator = UpstreamEventTranslator("m", True)
    response: Any = ReplayedResponse(pieces)
    return http.TranslatedStream(
        response, DEPLOYMENT, translator, lambda e: translator.feed(e.name, e.data)
    )


class Replay:
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.usage: Usage | None = USAGE

    async def chunks(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece

    async def aclose(self) -> None:
        return None


async def drain(stream: Any) -> int:
    total = 0
    async for piece in stream.chunks():
        total += len(piece)
    return total


def timed(work: Callable[[], object], batch: int) -> float:
    started = time.process_time()
    for _ in range(batch):
        work()
    return (time.process_time() - started) / batch * 1e6


async def timed_async(work: Callable[[], Any], batch: int) -> float:
    started = time.process_time()
    for _ in range(batch):
        await work()
    return (time.process_time() - started) / batch * 1e6


def pair(
    a: Callable[[], object], b: Callable[[], object], batch: int, batches: int
) -> tuple[float, float]:
    left, right = [], []
    for _ in range(batches):
        left.append(timed(a, batch))
        right.append(timed(b, batch))
    return statistics.median(left), statistics.median(right)


SOURCES = {
    "openai": "an OpenAI-format upstream",
    "anthropic": "an Anthropic upstream (translated)",
    "bytes": "chat bytes (a guardrail's stream)",
}


async def stream_pair(batch: int, batches: int, source: str) -> tuple[float, float]:
    pieces = anthropic_pieces() if source == "anthropic" else chunks()
    body = {**RESPONSES, "stream": True}
    tools = wire.Tools()

    def inner() -> Any:
        if source == "anthropic":
            return anthropic_stream(pieces)
        return upstream_stream(pieces) if source == "openai" else Replay(pieces)

    async def passed() -> int:
        return await drain(inner())

    async def translated() -> int:
        return await drain(wire.ResponsesEventStream(inner(), body, tools, "resp_1"))

    left, right = [], []
    for _ in range(batches):
        left.append(await timed_async(passed, batch))
        right.append(await timed_async(translated, batch))
    return statistics.median(left), statistics.median(right)


def loop(side: str, times: int) -> None:
    """``side`` (chat, responses, passed, stream) ``times`` times, after 20 to warm up."""
    if side in ("chat", "responses"):
        work = chat_side if side == "chat" else responses_side
        for _ in range(20 + times):
            work()
        return
    pieces, body, tools = chunks(), {**RESPONSES, "stream": True}, wire.Tools()

    async def run() -> None:
        for _ in range(20 + times):
            if side == "passed":
                await drain(Replay(pieces))
            else:
                await drain(wire.ResponsesEventStream(Replay(pieces), body, tools, "resp_1"))

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--loop", nargs=2, metavar=("SIDE", "N"))
    args = parser.parse_args()
    if args.loop:
        loop(args.loop[0], int(args.loop[1]))
        return
    load = os.getloadavg()
    chat, responses = pair(chat_side, responses_side, args.batch, args.batches)
    streamed = {
        source: asyncio.run(stream_pair(args.batch // 4 or 1, args.batches, source))
        for source in SOURCES
    }
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| per request | chat (us) | responses (us) | added (us) |")
    print("|---|---|---|---|")
    print(f"| request + answer | {chat:.1f} | {responses:.1f} | {responses - chat:.1f} |")
    for source, (passed, translated) in streamed.items():
        added = translated - passed
        print(
            f"| stream of {DELTAS} deltas, from {SOURCES[source]} | {passed:.1f} | "
            f"{translated:.1f} | {added:.1f} |"
        )


if __name__ == "__main__":
    main()
