"""What a native provider's translation costs per request, in process (no server, no network),
against the OpenAI-format path it is held to (issue 15: at most 100 us more):

- OpenAI JSON: the adapter's work on the OpenAI path: the upstream body (``model`` replaced,
  compact JSON) and ``usage`` read out of the answer, whose bytes go back as they came;
- OpenAI stream: the same body, then each recorded event framed (``gateway.wire.sse``) and looked
  at for usage and errors, as ``OpenAIUpstreamStream`` does;
- Gemini / Vertex JSON: ``request_to_gemini`` and its JSON, then the recorded generateContent
  answer parsed, translated to a chat.completion (``completion_from_gemini``) and serialised;
  Vertex adds the held OAuth token's lookup (``TokenMinter.token`` with a valid token in memory:
  the per-request path; minting happens once an hour and is measured apart);
- Gemini stream: the same request, then the recorded ``alt=sse`` events framed and translated by
  ``StreamTranslator`` into OpenAI chunks, and its end;
- Anthropic JSON and stream, the existing native translation, for comparison.

Each is timed in batches of CPU time (``time.process_time``: on a shared machine the wall clock
also counts the wait for a core); the median batch, per request, is printed in microseconds with the
delta over the OpenAI path of the same kind, beside the load average. The work of every row is
interleaved batch by batch, so load drifts hit all alike.

    .venv-dev/bin/python -m bench.translation [--batch 2000] [--batches 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.config import Deployment
from gateway.providers.google_token import TokenMinter
from gateway.providers.registry import PROVIDERS
from gateway.secrets.secret import Secret
from gateway.wire import gemini, openai
from gateway.wire.anthropic.messages import completion_from_anthropic, request_to_anthropic
from gateway.wire.anthropic.streams import UpstreamEventTranslator
from gateway.wire.sse import EventReader
from tests.support import recorded

BODY = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Summarise the quarterly report in three bullet points."},
    ],
    "temperature": 0.2,
    "max_tokens": 256,
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ],
}
CAP = 1 << 20


def sse(events: list[bytes]) -> bytes:
    return b"".join(b"data: " + e + b"\n\n" for e in events)


OPENAI_ANSWER = json.dumps(recorded.reply("openai", "chat_completion")).encode()
_OPENAI_EVENTS = recorded.reply("openai", "chat_completion_stream")
OPENAI_STREAM = sse([json.dumps(e).encode() for e in _OPENAI_EVENTS["events"]] + [b"[DONE]"])
GEMINI_ANSWER = json.dumps(recorded.reply("google", "generate_content")).encode()
GEMINI_STREAM = sse(
    [json.dumps(e).encode() for e in recorded.reply("google", "stream_generate_content")]
)
ANTHROPIC_ANSWER = json.dumps(recorded.reply("anthropic", "message")).encode()
ANTHROPIC_STREAM = b"".join(
    b"event: " + e["event"].encode() + b"\ndata: " + json.dumps(e["data"]).encode() + b"\n\n"
    for e in recorded.reply("anthropic", "stream")
)


def openai_json() -> None:
    json.dumps({**BODY, "model": "up"}, separators=(",", ":")).encode()
    openai.usage_from(json.loads(OPENAI_ANSWER).get("usage"))


def openai_stream() -> None:
    json.dumps({**BODY, "model": "up"}, separators=(",", ":")).encode()
    for event in EventReader(CAP).feed(OPENAI_STREAM):
        data = event.data
        if data != b"[DONE]" and b'"usage"' in data:
            openai.usage_from(json.loads(data).get("usage"))
        b"".join([event.raw])


def gemini_json() -> None:
    json.dumps(gemini.request_to_gemini(BODY)).encode()
    completion, _ = gemini.completion_from_gemini(json.loads(GEMINI_ANSWER), "m")
    json.dumps(completion).encode()


def gemini_stream() -> None:
    json.dumps(gemini.request_to_gemini(BODY)).encode()
    translator = gemini.StreamTranslator("m", True)
    out: list[bytes] = []
    for event in EventReader(CAP).feed(GEMINI_STREAM):
        out += translator.feed(event.data)
    out += translator.end()
    b"".join(out)


def anthropic_json() -> None:
    json.dumps(request_to_anthropic(BODY, "claude")).encode()
    completion, _ = completion_from_anthropic(json.loads(ANTHROPIC_ANSWER), "m")
    json.dumps(completion).encode()


def anthropic_stream() -> None:
    json.dumps(request_to_anthropic(BODY, "claude")).encode()
    translator = UpstreamEventTranslator("m", True)
    out: list[bytes] = []
    for event in EventReader(CAP).feed(ANTHROPIC_STREAM):
        out += translator.feed(event.name, event.data)
    b"".join(out)


def held_token() -> tuple[TokenMinter, Secret, asyncio.AbstractEventLoop]:
    """A minter holding a valid token (as after the first request of the hour)."""
    deployment = Deployment.model_validate(
        {
            "model": "v",
            "provider": "vertex_ai",
            "base_url": "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/l",
            "credential": "env:X",
        },
        context={"providers": PROVIDERS},
    )
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    info = {
        "type": "service_account",
        "private_key": pem.decode(),
        "client_email": "b@p.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    key = Secret(json.dumps(info))
    minter = TokenMinter(deployment)
    credentials = minter._load(key)
    credentials.token = "ya29.bench"
    credentials.expiry = credentials.expiry or __import__("datetime").datetime(2100, 1, 1)
    minter._held = {minter._fingerprint(key): credentials}
    return minter, key, asyncio.new_event_loop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.translation")
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=15)
    args = parser.parse_args(argv)
    minter, key, loop = held_token()

    async def tokens(count: int) -> None:
        for _ in range(count):
            await minter.token(key)
            gemini_json()

    def vertex_json() -> None:  # one batch: the awaits inside one running coroutine
        loop.run_until_complete(tokens(args.batch))

    rows: list[tuple[str, str, Callable[[], None]]] = [
        ("openai JSON", "json", openai_json),
        ("gemini JSON", "json", gemini_json),
        ("vertex JSON (+ held token)", "json", vertex_json),
        ("anthropic JSON", "json", anthropic_json),
        ("openai stream (7 chunks + usage)", "stream", openai_stream),
        ("gemini stream (3 events)", "stream", gemini_stream),
        ("anthropic stream (7 events)", "stream", anthropic_stream),
    ]
    timings: dict[str, list[float]] = {name: [] for name, _, _ in rows}
    for _ in range(args.batches):  # interleaved: every row once per round
        for name, _, work in rows:
            started = time.process_time()  # CPU time: what the work costs, not the queue for
            for _ in range(1 if work is vertex_json else args.batch):  # the CPU (shared here)
                work()
            timings[name].append((time.process_time() - started) / args.batch * 1e6)
    loop.close()
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs")
    print("| path | us per request | over the OpenAI path |\n|---|---|---|")
    base = {"json": "openai JSON", "stream": "openai stream (7 chunks + usage)"}
    for name, kind, _ in rows:
        cost = statistics.median(timings[name])
        delta = cost - statistics.median(timings[base[kind]])
        shown = "-" if name == base[kind] else f"{delta:+.1f}"
        print(f"| {name} | {cost:.1f} | {shown} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
