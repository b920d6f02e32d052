"""What each provider's translation costs per request, in process (no server, no network), and
what Bedrock's SigV4 signature costs: issue 15's bound is that a native provider's request path
adds at most 100 µs over the OpenAI-format path.

Per provider, for one chat request with a system prompt, a user turn and a tool:

- **json**: the request body built for the upstream and serialised, then the recorded answer
  parsed and turned into what the client gets (the OpenAI path: the body with its model
  replaced, and ``usage`` read out of the answer it passes through);
- **stream**: the recorded stream's bytes framed and translated into OpenAI chunks (OpenAI: SSE
  framing and the usage/error look-out of the pass-through; Bedrock: the adapter's
  ``EventStreamDecoder``, botocore's event-stream decoder with its header parser's answers held,
  and the ConverseStream translator; Gemini: the ``alt=sse`` events of streamGenerateContent,
  CRLF-framed as Google sends them, and the translator's end, the usage chunk and ``[DONE]``,
  which this format has no event for);
- **vertex json**: Gemini's json case with what Vertex AI adds per request, the OAuth token
  taken from memory (``google_token.TokenMinter``: the credential's fingerprint, the held
  token's expiry checked) into the ``Authorization`` header; the URL differs only by its text;
- **sign**: the request signed with SigV4, by the gateway's signer (``gateway.providers.sigv4``,
  the signing key derived once a day and held) and by botocore's ``SigV4Auth`` (what the gateway
  used before), side by side with their ratio; ``sigv4 cold`` derives the key afresh each time.
  Bedrock's json and stream rows sign with the gateway's signer; the ``/botocore`` rows are the
  same work signed by botocore, so one run shows Bedrock's cost over OpenAI before and after.

The cases run interleaved, one batch each per round, so load on the shared machine falls on
all of them alike, and each batch is timed in CPU time of this process (``process_time``), not
wall time, which on a loaded machine counts the waits for a core too; the median round, per
request, is printed in microseconds, with the load average.

    .venv-dev/bin/python -m bench.providers [--batch 2000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from google.oauth2.credentials import Credentials

from gateway.config import DEFAULT_MAX_EVENT_BYTES
from gateway.providers import sigv4
from gateway.providers.aws_credentials import key_pair
from gateway.providers.bedrock import EventStreamDecoder
from gateway.providers.google_token import TokenMinter
from gateway.secrets.secret import Secret
from gateway.wire import bedrock, cohere, gemini, openai
from gateway.wire.anthropic.messages import completion_from_anthropic, request_to_anthropic
from gateway.wire.anthropic.streams import UpstreamEventTranslator
from gateway.wire.sse import EventReader
from tests.support import eventstream, recorded

BODY: dict[str, Any] = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Summarise the quarterly report in three bullet points."},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "the weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ],
    "temperature": 0.2,
    "max_tokens": 256,
}
URL = "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
PAIR = Secret(
    json.dumps(
        {
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        }
    )
)


def _sse(events: list[bytes]) -> bytes:
    return b"".join(events)


def _bytes(name: str) -> bytes:
    return json.dumps(recorded.reply(*name.split("/"))).encode()


OPENAI_ANSWER = _bytes("openai/chat_completion")
ANTHROPIC_ANSWER = _bytes("anthropic/message")
BEDROCK_ANSWER = _bytes("bedrock/converse")
COHERE_ANSWER = _bytes("cohere/chat")
GEMINI_ANSWER = _bytes("google/generate_content")
OPENAI_STREAM = _sse(
    [
        b"data: " + json.dumps(e).encode() + b"\n\n"
        for e in recorded.reply("openai", "chat_completion_stream")["events"]
    ]
    + [b"data: [DONE]\n\n"]
)
ANTHROPIC_STREAM = _sse(
    [
        f"event: {e['event']}\ndata: {json.dumps(e['data'])}\n\n".encode()
        for e in recorded.reply("anthropic", "stream")
    ]
)
BEDROCK_STREAM = b"".join(
    eventstream.event(e["event"], e["data"]) for e in recorded.reply("bedrock", "converse_stream")
)
COHERE_STREAM = _sse(
    [
        f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode()
        for e in recorded.reply("cohere", "chat_stream")
    ]
)

# Google ends each event with CRLF CRLF (as the fake Google of the tests does).
GEMINI_STREAM = _sse(
    [
        b"data: " + json.dumps(e).encode() + b"\r\n\r\n"
        for e in recorded.reply("google", "stream_generate_content")
    ]
)


def openai_json() -> None:
    json.dumps({**BODY, "model": "upstream"}, separators=(",", ":")).encode()
    openai.usage_from(json.loads(OPENAI_ANSWER).get("usage"))


def openai_stream() -> None:
    reader = EventReader(1 << 20)
    for event in reader.feed(OPENAI_STREAM):
        if event.data != b"[DONE]" and b'"usage"' in event.data:
            openai.usage_from(json.loads(event.data).get("usage"))


def anthropic_json() -> None:
    json.dumps(request_to_anthropic(BODY, "claude")).encode()
    completion, _ = completion_from_anthropic(json.loads(ANTHROPIC_ANSWER), "m")
    json.dumps(completion).encode()


def anthropic_stream() -> None:
    translator = UpstreamEventTranslator("m", True)
    for event in EventReader(1 << 20).feed(ANTHROPIC_STREAM):
        translator.feed(event.name, event.data)


CREDENTIALS = key_pair(PAIR)  # the adapter parses a key pair once per Secret the broker hands out
BOTOCORE_CREDENTIALS = ReadOnlyCredentials(
    CREDENTIALS.access_key, CREDENTIALS.secret_key, CREDENTIALS.token
)
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
Signer = Callable[[bytes], dict[str, str]]


def ours(payload: bytes) -> dict[str, str]:
    return sigv4.sign(CREDENTIALS, "us-east-1", URL, payload, HEADERS, "bedrock")


def botocore_signer(payload: bytes) -> dict[str, str]:
    """What the adapter did before its own signer: botocore's SigV4Auth on an AWSRequest."""
    request = AWSRequest(method="POST", url=URL, data=payload, headers=HEADERS)
    SigV4Auth(BOTOCORE_CREDENTIALS, "bedrock", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def ours_cold(payload: bytes) -> dict[str, str]:
    sigv4.SIGNING_KEYS.clear()
    return ours(payload)


def bedrock_json(signer: Signer = ours) -> None:
    payload = json.dumps(bedrock.request_to_converse(BODY), separators=(",", ":")).encode()
    signer(payload)
    completion, _ = bedrock.completion_from_converse(json.loads(BEDROCK_ANSWER), "m")
    json.dumps(completion).encode()


def bedrock_stream(signer: Signer = ours) -> None:
    payload = json.dumps(bedrock.request_to_converse(BODY), separators=(",", ":")).encode()
    signer(payload)
    translator = bedrock.ConverseStreamTranslator("m", True)
    EventStreamDecoder("bench", DEFAULT_MAX_EVENT_BYTES, translator).feed(BEDROCK_STREAM)


def cohere_json() -> None:
    json.dumps(cohere.request_to_cohere(BODY, "command")).encode()
    completion, _ = cohere.completion_from_cohere(json.loads(COHERE_ANSWER), "m")
    json.dumps(completion).encode()


def cohere_stream() -> None:
    translator = cohere.CohereStreamTranslator("m", True)
    for event in EventReader(1 << 20).feed(COHERE_STREAM):
        translator.feed(event.data)


def gemini_json() -> None:
    json.dumps(gemini.request_to_gemini(BODY)).encode()
    completion, _ = gemini.completion_from_gemini(json.loads(GEMINI_ANSWER), "m")
    json.dumps(completion).encode()


def gemini_stream() -> None:
    translator = gemini.StreamTranslator("m", True)
    for event in EventReader(1 << 20).feed(GEMINI_STREAM):
        translator.feed(event.data)
    translator.end()


# A service-account key of a real one's size (about 2.3 KB: the minter hashes it per request),
# and the token google-auth would have minted from it, held and an hour from expiry.
VERTEX_KEY = Secret(
    json.dumps(
        {
            "type": "service_account",
            "project_id": "p",
            "private_key_id": "0" * 40,
            "private_key": "-----BEGIN PRIVATE KEY-----\n"
            + "A" * 1700
            + "\n-----END PRIVATE KEY-----\n",
            "client_email": "gateway@p.iam.gserviceaccount.com",
            "client_id": "1" * 21,
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )
)
MINTER = TokenMinter(None)  # type: ignore[arg-type]  # the deployment is read only to refresh
MINTER._held[TokenMinter._fingerprint(VERTEX_KEY)] = Credentials(  # type: ignore[no-untyped-call]
    "ya29." + "t" * 200,
    expiry=datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(hours=1),
)


def _now(coroutine: Any) -> Any:
    """A coroutine that never waits (the token is held), run to its value without a loop."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the held token was not used")


def vertex_json() -> None:
    token = _now(MINTER.token(VERTEX_KEY))
    {"Content-Type": "application/json", "Authorization": f"Bearer {token.reveal()}"}
    gemini_json()


SIGNED_BODY = b'{"messages":[]}'
CASES: dict[str, Callable[[], object]] = {
    "openai json": openai_json,
    "openai stream": openai_stream,
    "anthropic json": anthropic_json,
    "anthropic stream": anthropic_stream,
    "bedrock json": bedrock_json,
    "bedrock stream": bedrock_stream,
    "bedrock json/botocore": lambda: bedrock_json(botocore_signer),
    "bedrock stream/botocore": lambda: bedrock_stream(botocore_signer),
    "sign sigv4": lambda: ours(SIGNED_BODY),
    "sign sigv4 cold": lambda: ours_cold(SIGNED_BODY),
    "sign botocore": lambda: botocore_signer(SIGNED_BODY),
    "cohere json": cohere_json,
    "cohere stream": cohere_stream,
    "gemini json": gemini_json,
    "gemini stream": gemini_stream,
    "vertex json": vertex_json,
}


def measure(batch: int, rounds: int) -> dict[str, float]:
    timings: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(rounds):
        for name, work in CASES.items():
            started = time.process_time()
            for _ in range(batch):
                work()
            timings[name].append((time.process_time() - started) / batch)
    return {name: statistics.median(values) * 1e6 for name, values in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.providers")
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    for work in CASES.values():
        work()  # warm: imports, botocore's first signer, the SSE reader
    results = measure(args.batch, args.rounds)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'case':<24}{'µs/request':>12}{'over openai':>14}")
    for name, micros in results.items():
        kind = "stream" if "stream" in name else "json"
        shown = not name.startswith(("openai", "sign"))
        extra = f"{micros - results[f'openai {kind}']:+.1f}" if shown else ""
        print(f"{name:<24}{micros:>12.1f}{extra:>14}")
    botocore = results["sign botocore"]
    warm, cold = botocore / results["sign sigv4"], botocore / results["sign sigv4 cold"]
    print(f"sign: botocore / sigv4 = {warm:.1f}x (with the key derived each time: {cold:.1f}x)")


if __name__ == "__main__":
    main()
