"""Fake Bedrock and Cohere upstreams on loopback, speaking their real wire formats and replaying
the replies recorded in tests/assets/providers/bedrock and .../cohere.

``FakeBedrock`` serves ``/model/{modelId}/converse`` (JSON), ``/converse-stream`` (the binary
event-stream framing, ``eventstream.py``) and ``/invoke`` (Titan and Cohere embeddings, Cohere
rerank), and **verifies every request's SigV4 signature with botocore**: it recomputes the
signature from the method, the raw path, the signed headers and the body with ``SigV4Auth``
for the secret it knows for the request's access key id, and compares; a request whose
signature does not match, whose key is unknown, whose session token is not the one issued with
the key, or whose scope is not ``<region>/bedrock`` is answered 403 as Bedrock does. It records
what it verified (``verified``) and what it refused (``refused``).

``FakeCohere`` serves ``/v2/chat`` (JSON and SSE), ``/v2/embed`` and ``/v2/rerank`` and checks
the Bearer key. Both can be told (``then``) to answer the next request with a recorded error
(throttling, context too long, a signature error), a guardrail stop, or a stream exception.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.support import eventstream, recorded

AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
CLOCK_SKEW = 300  # seconds, as AWS allows


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes = b""


@dataclass
class Next:
    error: str | None = None  # a recorded error reply's name
    reply: str | None = None  # a recorded answer's name instead of the usual one
    stream_exception: bool = False  # a stream that fails after its first event
    headers: dict[str, str] = field(default_factory=dict)
    planted: str | None = None  # put into the error message (leak canaries)


class ThreadedServer:
    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self._queue: deque[Next] = deque()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def then(self, **behaviour: Any) -> ThreadedServer:
        self._queue.append(Next(**behaviour))
        return self

    def _next(self) -> Next:
        return self._queue.popleft() if self._queue else Next()

    def reset(self) -> None:
        self.requests.clear()
        self._queue.clear()

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def start(self) -> ThreadedServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _record(self, request: web.Request) -> tuple[bytes, Any]:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.requests.append(Seen(request.raw_path, dict(request.headers), body, raw))
        return raw, body


def verify_sigv4(
    request: web.Request,
    raw: bytes,
    secret_for: Callable[[str], tuple[str, str | None] | None],
    region: str,
    service: str = "bedrock",
) -> str | None:
    """None when ``request`` carries a valid SigV4 signature (recomputed with botocore), else
    why not."""
    match = AUTH.match(request.headers.get("Authorization", ""))
    if match is None:
        return "missing or malformed Authorization"
    if match["region"] != region or match["service"] != service:
        return "wrong credential scope"
    known = secret_for(match["key"])
    if known is None:
        return "unknown access key"
    secret, token = known
    if request.headers.get("X-Amz-Security-Token") != token:
        return "wrong session token"
    stamp = request.headers.get("X-Amz-Date", "")
    try:
        when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "bad X-Amz-Date"
    if abs((datetime.now(UTC) - when).total_seconds()) > CLOCK_SKEW or stamp[:8] != match["date"]:
        return "stale X-Amz-Date"
    signed = match["signed"].split(";")
    if "host" not in signed or any(h not in request.headers for h in signed if h != "host"):
        return "signed headers missing"
    headers = {h: request.headers[h] for h in signed if h != "host"}
    headers["host"] = request.headers["Host"]
    rebuilt = AWSRequest(
        method=request.method,
        url=f"http://{request.headers['Host']}{request.raw_path}",
        data=raw,
        headers=headers,
    )
    rebuilt.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(match["key"], secret, token), service, region)
    canonical = signer.canonical_request(rebuilt)
    expected = signer.signature(signer.string_to_sign(rebuilt, canonical), rebuilt)
    if not hmac.compare_digest(expected, match["signature"]):
        return "signature mismatch"
    return None


class FakeBedrock(ThreadedServer):
    def __init__(self, region: str = "us-east-1") -> None:
        super().__init__()
        self.region = region
        self.keys: dict[str, tuple[str, str | None]] = {}  # access key id -> (secret, token)
        self.lookup: Callable[[str], tuple[str, str | None] | None] | None = None
        self.verified: list[str] = []  # access key ids of requests whose signature checked out
        self.refused: list[str] = []  # why requests were refused

    def allow(self, key_id: str, secret: str, token: str | None = None) -> None:
        self.keys[key_id] = (secret, token)

    def _secret_for(self, key_id: str) -> tuple[str, str | None] | None:
        if key_id in self.keys:
            return self.keys[key_id]
        return self.lookup(key_id) if self.lookup is not None else None

    def reset(self) -> None:
        super().reset()
        self.verified.clear()
        self.refused.clear()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/model/{model}/converse", self._converse)
        app.router.add_post("/model/{model}/converse-stream", self._converse_stream)
        app.router.add_post("/model/{model}/invoke", self._invoke)

    async def _checked(self, request: web.Request) -> tuple[Any, Next, web.Response | None]:
        raw, body = await self._record(request)
        behaviour = self._next()
        problem = verify_sigv4(request, raw, self._secret_for, self.region)
        if problem is not None:
            self.refused.append(problem)
            return body, behaviour, self._error("error_signature", None)
        self.verified.append(AUTH.match(request.headers["Authorization"])["key"])  # type: ignore[index]
        if behaviour.error is not None:
            return (
                body,
                behaviour,
                self._error(behaviour.error, behaviour.planted, behaviour.headers),
            )
        return body, behaviour, None

    def _error(
        self, name: str, planted: str | None, headers: dict[str, str] | None = None
    ) -> web.Response:
        error = recorded.reply("bedrock", name)
        if planted:
            error["body"]["message"] += " " + planted
        kind = f"{error['type']}:http://internal.amazon.com/coral/com.amazon.bedrock/"
        return web.json_response(
            error["body"],
            status=error["status"],
            headers={"x-amzn-ErrorType": kind, **(headers or {})},
        )

    async def _converse(self, request: web.Request) -> web.Response:
        body, behaviour, refused = await self._checked(request)
        if refused is not None:
            return refused
        name = behaviour.reply or ("converse_tool_use" if body.get("toolConfig") else "converse")
        return web.json_response(recorded.reply("bedrock", name))

    async def _converse_stream(self, request: web.Request) -> web.StreamResponse:
        body, behaviour, refused = await self._checked(request)
        if refused is not None:
            return refused
        name = "converse_stream_tool_use" if body.get("toolConfig") else "converse_stream"
        events = recorded.reply("bedrock", name)
        response = web.StreamResponse(
            headers={"Content-Type": "application/vnd.amazon.eventstream"}
        )
        await response.prepare(request)
        for index, item in enumerate(events):
            await response.write(eventstream.event(item["event"], item["data"]))
            if behaviour.stream_exception and index == 0:
                failure = recorded.reply("bedrock", "stream_exception")
                if behaviour.planted:
                    failure["data"]["message"] += " " + behaviour.planted
                await response.write(eventstream.exception(failure["exception"], failure["data"]))
                break
        await response.write_eof()
        return response

    async def _invoke(self, request: web.Request) -> web.Response:
        body, _, refused = await self._checked(request)
        if refused is not None:
            return refused
        model = request.match_info["model"]
        if "rerank" in model:
            return web.json_response(recorded.reply("bedrock", "cohere_rerank"))
        if "cohere" in model:
            answer = recorded.reply("bedrock", "cohere_embed")
            answer["embeddings"] = answer["embeddings"][: len(body["texts"])]
            return web.json_response(answer)
        return web.json_response(recorded.reply("bedrock", "titan_embed"))


class FakeCohere(ThreadedServer):
    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/chat", self._chat)
        app.router.add_post("/v2/embed", self._embed)
        app.router.add_post("/v2/rerank", self._rerank)
        app.router.add_post("/rerank", self._rerank)  # an OpenAI-compatible server's rerank

    async def _checked(self, request: web.Request) -> tuple[Any, web.Response | None]:
        _, body = await self._record(request)
        behaviour = self._next()
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return body, web.json_response({"message": "invalid api token"}, status=401)
        if behaviour.error is not None:
            error = recorded.reply("cohere", behaviour.error)
            if behaviour.planted:
                error["body"]["message"] += " " + behaviour.planted
            return body, web.json_response(
                error["body"], status=error["status"], headers=behaviour.headers
            )
        return body, None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._checked(request)
        if refused is not None:
            return refused
        tools = bool(body.get("tools"))
        if not body.get("stream"):
            return web.json_response(
                recorded.reply("cohere", "chat_tool_call" if tools else "chat")
            )
        events = recorded.reply("cohere", "chat_stream_tool_call" if tools else "chat_stream")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for item in events:
            await response.write(f"event: {item['type']}\ndata: {json.dumps(item)}\n\n".encode())
        await response.write_eof()
        return response

    async def _embed(self, request: web.Request) -> web.Response:
        body, refused = await self._checked(request)
        if refused is not None:
            return refused
        answer = recorded.reply("cohere", "embed")
        answer["embeddings"]["float"] = answer["embeddings"]["float"][: len(body["texts"])]
        return web.json_response(answer)

    async def _rerank(self, request: web.Request) -> web.Response:
        body, refused = await self._checked(request)
        if refused is not None:
            return refused
        answer = recorded.reply("cohere", "rerank")
        # the recorded ranking, of the documents this request sent
        sent = len(body.get("documents") or [])
        answer["results"] = [r for r in answer["results"] if r["index"] < sent]
        return web.json_response(answer)
