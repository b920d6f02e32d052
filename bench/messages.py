"""What the Anthropic Messages route adds over chat on the same deployment, in process (no
server, no network): the body work each route does per request, from the client's JSON to the
bytes the client gets, with the upstream's answer taken from the recordings the fake upstream
replays (tests/assets/providers/).

    deployment        chat (/v1/chat/completions)             messages (/v1/messages)
    openai-format     check_chat, the upstream body written;  check, translate, check_chat, the
                      the answer passes through (a stream:    upstream body written; the answer
                      read by OpenAIUpstreamStream)           translated (a stream: the chunks
                                                              OpenAIUpstreamStream parsed)
    anthropic         check_chat, request_to_anthropic,        check, translate (for limits),
                      the answer translated back               the body passed on; usage read

A stream is replayed an event per piece, as an upstream sends it, through the adapter's own
stream reader on both sides (tests/support/replayed.py). Both sides run in interleaved batches
(chat, messages, chat, ...); the median batch, per request, is printed in microseconds of CPU
time (``time.process_time``) with the difference and the load average. Compare within one run.

    .venv-dev/bin/python -m bench.messages [--batch 2000] [--batches 15]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from gateway.api import validation
from gateway.api.messages import MessagesCall
from gateway.wire.anthropic import ingress, native
from gateway.wire.anthropic.messages import completion_from_anthropic, request_to_anthropic
from gateway.wire.anthropic.native import NativeEventMonitor
from gateway.wire.anthropic.streams import AnthropicEventStream, UpstreamEventTranslator
from gateway.wire.sse import EventReader
from tests.support import recorded
from tests.support.replayed import drained, run_now, upstream_stream

SYSTEM = "You are a helpful assistant. Answer briefly."
QUESTION = "Summarise the quarterly report in three bullet points."
CHAT = {
    "model": "m",
    "max_tokens": 256,
    "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}],
}
MESSAGES = {
    "model": "m",
    "max_tokens": 256,
    "system": SYSTEM,
    "messages": [{"role": "user", "content": QUESTION}],
}


def _events(name: str) -> bytes:
    return b"".join(
        f"event: {e['event']}\ndata: {json.dumps(e['data'])}\n\n".encode()
        for e in recorded.reply("anthropic", name)
    )


OPENAI_ANSWER = json.dumps(recorded.reply("openai", "chat_completion")).encode()
# The adapter's own parse of the answer (``Reply.parsed``; both routes' adapter makes it), which
# the route translates from; passed only to a tree whose route reads it (so that a run against
# an older tree, its gateway first on sys.path, measures that tree as it was).
_PARSED = (
    (json.loads(OPENAI_ANSWER),)
    if "parsed" in inspect.signature(MessagesCall.message_of).parameters
    else ()
)
_SCRIPT = recorded.reply("openai", "chat_completion_stream")
OPENAI_STREAM = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in _SCRIPT["events"])
OPENAI_STREAM += f"data: {_SCRIPT['last']}\n\n".encode()
OPENAI_PIECES = [event + b"\n\n" for event in OPENAI_STREAM.split(b"\n\n") if event]
ANTHROPIC_ANSWER = json.dumps(recorded.reply("anthropic", "message")).encode()
ANTHROPIC_STREAM = _events("stream")


def _messages_in(raw_bytes: bytes) -> MessagesCall:
    raw = json.loads(raw_bytes)
    ingress.refuse_steering(raw)
    validation.check_fields(raw, ingress.FIELDS)
    ingress.check(raw)
    call = MessagesCall(raw, ingress.translate(raw), None)
    validation.check_chat(call.translated.body)
    call.input_estimate = 11  # admission's, which chat computes the same way
    return call


def openai_chat(body: bytes) -> bytes:
    parsed = json.loads(body)
    validation.check_chat(parsed)
    json.dumps(parsed).encode()  # what the adapter sends
    return OPENAI_ANSWER  # passed through as the upstream sent it


def openai_messages(body: bytes) -> bytes:
    call = _messages_in(body)
    json.dumps(call.translated.body).encode()  # what the adapter sends
    return call.message_of(OPENAI_ANSWER, "d", *_PARSED)


def openai_chat_stream(body: bytes) -> bytes:
    parsed = json.loads(body)
    validation.check_chat(parsed)
    json.dumps(parsed).encode()
    return b"".join(run_now(drained(upstream_stream(OPENAI_PIECES))))


def openai_messages_stream(body: bytes) -> bytes:
    call = _messages_in(body)
    json.dumps(call.translated.body).encode()
    events = AnthropicEventStream(upstream_stream(OPENAI_PIECES), "m", call.input_estimate)
    return b"".join(run_now(drained(events)))


def anthropic_chat(body: bytes) -> bytes:
    parsed = json.loads(body)
    validation.check_chat(parsed)
    json.dumps(request_to_anthropic(parsed, "claude")).encode()
    completion, _ = completion_from_anthropic(json.loads(ANTHROPIC_ANSWER), "m")
    return json.dumps(completion).encode()


def anthropic_messages(body: bytes) -> bytes:
    call = _messages_in(body)
    json.dumps(native.request(call.raw, "claude")).encode()
    native.usage_of_message(json.loads(ANTHROPIC_ANSWER))
    return ANTHROPIC_ANSWER


def anthropic_chat_stream(body: bytes) -> bytes:
    parsed = json.loads(body)
    validation.check_chat(parsed)
    json.dumps(request_to_anthropic(parsed, "claude")).encode()
    translator = UpstreamEventTranslator("m", True)
    out: list[bytes] = []
    for event in EventReader(1 << 20).feed(ANTHROPIC_STREAM):
        out += translator.feed(event.name, event.data)
    return b"".join(out)


def anthropic_messages_stream(body: bytes) -> bytes:
    call = _messages_in(body)
    json.dumps(native.request(call.raw, "claude")).encode()
    monitor = NativeEventMonitor()
    return b"".join(monitor.feed(e) for e in EventReader(1 << 20).feed(ANTHROPIC_STREAM))


PAIRS: list[tuple[str, Callable[[bytes], bytes], Callable[[bytes], bytes]]] = [
    ("openai-format, complete", openai_chat, openai_messages),
    ("openai-format, streamed", openai_chat_stream, openai_messages_stream),
    ("anthropic, complete", anthropic_chat, anthropic_messages),
    ("anthropic, streamed", anthropic_chat_stream, anthropic_messages_stream),
]


def _batch(function: Callable[[bytes], bytes], body: bytes, size: int) -> float:
    started = time.process_time()  # CPU time: on a shared machine the wall clock also counts
    for _ in range(size):  # the wait for a core
        function(body)
    return (time.process_time() - started) / size * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.messages", description=__doc__)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=15)
    args = parser.parse_args(argv)
    chat_body, messages_body = json.dumps(CHAT).encode(), json.dumps(MESSAGES).encode()
    print(f"load average before: {os.getloadavg()}")
    print("| deployment, answer | chat µs | messages µs | added µs |")
    print("|---|---|---|---|")
    results: dict[str, Any] = {}
    for name, chat, messages in PAIRS:
        chat(chat_body)  # warm, and check that each side makes what the client gets
        answer = messages(messages_body)
        if b"Hello" not in answer or (b"event:" in answer and b"message_stop" not in answer):
            raise SystemExit(f"{name}: the messages side did not make a whole answer")
        chat_runs, message_runs = [], []
        for _ in range(args.batches):  # interleaved
            chat_runs.append(_batch(chat, chat_body, args.batch))
            message_runs.append(_batch(messages, messages_body, args.batch))
        a, b = statistics.median(chat_runs), statistics.median(message_runs)
        results[name] = (a, b)
        print(f"| {name} | {a:.1f} | {b:.1f} | {b - a:+.1f} |")
    print(f"load average after: {os.getloadavg()}")
    worst = max(b - a for a, b in results.values())
    verdict = "within" if worst <= 50 else "over"
    print(f"largest added: {worst:+.1f} µs per request ({verdict} the 50 µs bound)")
    return 0 if worst <= 50 else 1


if __name__ == "__main__":
    raise SystemExit(main())
