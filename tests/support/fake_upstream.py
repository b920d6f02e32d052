"""A local upstream that speaks the OpenAI and Anthropic wire formats, for tests (no provider is
reachable here).

It serves ``/v1/chat/completions`` (JSON and SSE), ``/v1/embeddings``, OpenAI's Responses API
``/v1/responses`` (JSON and SSE; Azure's ``/openai/responses``), Azure's
``/openai/deployments/<name>/...``, Anthropic's ``/v1/messages`` (JSON and SSE; with extended
thinking when the request asks for it) and ``/v1/messages/count_tokens`` on a free
loopback port, answering with the replies recorded in tests/assets/providers/ (``recorded.py``),
so the adapters are tested against the providers' documented shapes rather than against a copy of
their own understanding. It records every request it gets (path, query, headers, JSON body), and
can be told to answer with a status, the provider's error shape, a delay, a stream that is cut
or that ends early (cleanly, without its last events), or a redirect. It runs its own event loop
in a thread so that both synchronous tests and the gateway under test can talk to it.

For the hardening tests it can also misbehave the way a compromised or broken upstream would: an
error whose ``code`` (Anthropic: ``type``) is any string, an error event in the middle of a
stream, an answer or a stream of any size (written out piece by piece, never held whole), and a
stream that never sends the blank line that ends an SSE event.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any

from aiohttp import web

from tests.support import recorded

EPOCH = web.RequestKey("epoch", int)  # the reset() epoch a request arrived in


@dataclass
class Behaviour:
    status: int = 200
    delay: float = 0.0  # seconds before the status line
    error_message: str = "upstream says no"
    headers: dict[str, str] = field(default_factory=dict)
    chunk_delay: float = 0.0  # seconds between stream chunks
    cut_after: int | None = None  # close the connection after this many stream chunks
    end_after: int | None = None  # end the stream cleanly after this many chunks ([DONE] unsent)
    include_usage: bool = True  # send usage in streams (when the client asked) and replies
    redirect_to: str | None = None
    error_code: str | None = None  # the error body's code (Anthropic: its error.type)
    stream_error: str | None = None  # an error event with this message after the first event
    body_bytes: int | None = None  # an answer (or with ``status``, an error) of this many bytes
    announce_length: bool = True  # send Content-Length with a large answer (or go chunked)
    stream_bytes: int | None = None  # a well-formed stream padded to about this many bytes
    unframed_bytes: int | None = None  # a stream of this many bytes without one blank line
    answer: bytes | None = None  # a 200 with exactly these bytes as its body (any content)
    content: list[str] | None = None  # the answer's text: joined, or streamed one event a piece
    # Responses and Messages: call this tool (when it is offered) with these JSON arguments,
    # instead of the first tool with the recorded ones (an agent's scripted turn)
    tool_name: str | None = None
    tool_arguments: str | None = None
    # Anthropic: call this (offered) tool with this input, instead of the first tool with the
    # recorded input, when the last turn is not a tool result
    tool: str | None = None
    tool_input: dict[str, Any] | None = None


PIECE = 64 * 1024  # how much a large answer writes at a time


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class FakeUpstream:
    REPLY_TEXT: str = recorded.reply("openai", "chat_completion")["choices"][0]["message"][
        "content"
    ]

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.default = Behaviour()
        self._queue: deque[Behaviour] = deque()
        self.disconnects = 0  # streams whose client went away before the end
        self.completed_streams = 0
        self.in_flight = 0  # requests being answered now
        self.most_in_flight = 0  # the most answered at once since reset()
        # Bumped by reset(): a request counts only in the epoch it arrived in, so a handler of
        # an earlier test still sleeping (a delay longer than the gateway's timeout) cannot
        # count in the next test.
        self._epoch = 0
        self.response_ids: set[str] = set()  # the Responses ids this fake has answered with
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- control ----------------------------------------------------------------------------
    def then(self, **behaviour: Any) -> FakeUpstream:
        """Queue a behaviour for the next request (after the queue empties: ``default``)."""
        self._queue.append(Behaviour(**behaviour))
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeUpstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def reset(self) -> None:
        self.requests.clear()
        self._queue.clear()
        self.default = Behaviour()
        self.disconnects = 0
        self.completed_streams = 0
        self.most_in_flight = 0
        self._epoch += 1

    # -- server -----------------------------------------------------------------------------
    async def _start(self) -> None:
        app = web.Application(middlewares=[self._in_flight])
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/openai/deployments/{name}/chat/completions", self._chat)
        app.router.add_post("/openai/deployments/{name}/embeddings", self._embeddings)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/openai/responses", self._responses)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_route("*", "/{tail:.*}", self._anything)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def _count(self, request: web.Request, counter: str) -> None:
        if request.get(EPOCH) == self._epoch:
            setattr(self, counter, getattr(self, counter) + 1)

    async def _record(self, request: web.Request) -> Any:
        request[EPOCH] = self._epoch
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.requests.append(
            Seen(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        return body

    def _next(self) -> Behaviour:
        return self._queue.popleft() if self._queue else self.default

    async def _anything(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return web.json_response({"error": {"message": "no such route"}}, status=404)

    @web.middleware
    async def _in_flight(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            response: web.StreamResponse = await handler(request)
            return response
        finally:
            self.in_flight -= 1

    async def _prelude(
        self, request: web.Request, b: Behaviour, anthropic: bool = False
    ) -> web.StreamResponse | None:
        if b.delay:
            await asyncio.sleep(b.delay)
            if request.transport is None or request.transport.is_closing():
                self._count(request, "disconnects")  # the caller gave up while we "thought"
        if b.redirect_to:
            return web.Response(status=307, headers={"Location": b.redirect_to})
        if b.answer is not None:
            kind = (
                "text/event-stream"
                if b.answer.startswith((b"data:", b"event:"))
                else "application/json"
            )
            response = web.StreamResponse(headers={"Content-Type": kind})
            return await self._write_all(request, response, [b.answer], prepare=True)
        if b.body_bytes is not None:
            return await self._large_answer(request, b, anthropic)
        if b.status != 200:
            body: dict[str, Any] = recorded.reply("anthropic" if anthropic else "openai", "error")
            body["error"]["message"] = b.error_message
            if b.error_code is not None:  # any string, as a broken or hostile upstream sends it
                body["error"]["type" if anthropic else "code"] = b.error_code
            return web.json_response(body, status=b.status, headers=b.headers)
        if b.unframed_bytes is not None:
            return await self._unframed(request, b.unframed_bytes)
        return None

    async def _write_all(
        self,
        request: web.Request,
        response: web.StreamResponse,
        pieces: Iterable[bytes],
        prepare: bool = False,
    ) -> web.StreamResponse:
        """Write ``pieces`` (an iterable of bytes) one at a time; a client that goes away ends
        it, counted in ``disconnects``."""
        if prepare:
            await response.prepare(request)
        try:
            for piece in pieces:
                await response.write(piece)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError, RuntimeError):
            self._count(request, "disconnects")
        return response

    async def _large_answer(
        self, request: web.Request, b: Behaviour, anthropic: bool
    ) -> web.StreamResponse:
        """A valid answer (chat.completion, or an Anthropic message) of ``b.body_bytes``: its
        text is mostly padding. With a status other than 200 it is an error body that large."""
        if anthropic:
            head = (
                b'{"id":"msg_big","type":"message","role":"assistant","model":"big",'
                b'"stop_reason":"end_turn","usage":{"input_tokens":11,"output_tokens":7},'
                b'"content":[{"type":"text","text":"'
            )
            tail = b'"}]}'
        else:
            head = (
                b'{"id":"chatcmpl-big","object":"chat.completion","created":1,"model":"big",'
                b'"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18},'
                b'"choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant",'
                b'"content":"'
            )
            tail = b'"}}]}'
        if b.status != 200:
            head, tail = b'{"error": {"message": "', b'"}}'
        assert b.body_bytes is not None
        size = max(b.body_bytes, len(head) + len(tail))
        response = web.StreamResponse(status=b.status, headers={"Content-Type": "application/json"})
        if b.announce_length:
            response.content_length = size
        await response.prepare(request)
        padding = size - len(head) - len(tail)

        def pieces() -> Iterator[bytes]:
            yield head
            left = padding
            while left > 0:
                yield b"x" * min(PIECE, left)
                left -= PIECE
            yield tail

        return await self._write_all(request, response, pieces())

    async def _unframed(self, request: web.Request, size: int) -> web.StreamResponse:
        """An event stream of ``size`` bytes of ``data:`` lines with no blank line between
        them: one event that never ends."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        line = b"data: " + b"y" * 1000 + b"\n"

        def pieces() -> Iterator[bytes]:
            block = line * (PIECE // len(line))
            left = size
            while left > 0:
                yield block
                left -= len(block)

        return await self._write_all(request, response, pieces())

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        b = self._next()
        early = await self._prelude(request, b)
        if early is not None:
            return early
        model = body.get("model", request.match_info.get("name", "")) if body else ""
        tools = body.get("tools") if isinstance(body, dict) else None
        last = (body.get("messages") or [{}])[-1] if isinstance(body, dict) else {}
        tool = tools[0]["function"]["name"] if tools and last.get("role") != "tool" else None
        if isinstance(body, dict) and body.get("stream"):
            return await self._stream(request, body, b, model, tool)
        reply = recorded.reply("openai", "chat_completion_tool_call" if tool else "chat_completion")
        reply["model"] = model
        choice = reply["choices"][0]
        if tool:
            choice["message"]["tool_calls"][0]["function"]["name"] = tool
        elif last.get("role") == "tool":
            choice["message"]["content"] = f"The tool said: {last.get('content')}"
        if b.content is not None:
            choice["message"]["content"] = "".join(b.content)
        reply["choices"] = [{**choice, "index": i} for i in range(int(body.get("n") or 1))]
        if not b.include_usage:
            del reply["usage"]
        return web.json_response(reply, headers=b.headers)

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        b: Behaviour,
        model: str,
        tool: str | None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        name = "chat_completion_stream_tool_call" if tool else "chat_completion_stream"
        script = recorded.reply("openai", name)
        options = body.get("stream_options") or {}
        events = []
        if b.content is not None:  # the recorded framing around these pieces of text
            first, *middle, _ = [c for c in script["events"] if "usage" not in c]
            choice = middle[0]["choices"][0]
            texts = [
                {**middle[0], "choices": [{**choice, "delta": {"content": t}}]} for t in b.content
            ]
            usage = [c for c in script["events"] if "usage" in c]
            script["events"] = [first, *texts, script["events"][len(middle) + 1], *usage]
        for chunk in script["events"]:
            chunk["model"] = model
            if "usage" in chunk and not (options.get("include_usage") and b.include_usage):
                continue  # the usage chunk comes only when the client asked for it
            for choice in chunk["choices"]:
                for call in choice["delta"].get("tool_calls") or []:
                    if "function" in call and "name" in call["function"]:
                        call["function"]["name"] = tool
            events.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        events.append(f"data: {script['last']}\n\n".encode())
        if b.stream_error is not None:  # the first chunk, then an error event
            error = {"message": b.stream_error, "type": "server_error", "code": b.error_code}
            failed = b"data: " + json.dumps({"error": error}).encode() + b"\n\n"
            return await self._write_events(request, response, [events[0], failed], b)
        if b.stream_bytes is not None:
            (first, *_) = script["events"]
            first["choices"][0]["delta"] = {"content": "z" * 1000}
            pad = b"data: " + json.dumps(first).encode() + b"\n\n"
            return await self._write_events(
                request, response, _padded(events, 1, pad, b.stream_bytes), b
            )
        return await self._write_events(request, response, events, b)

    async def _write_events(
        self,
        request: web.Request,
        response: web.StreamResponse,
        events: Iterable[bytes],
        b: Behaviour,
    ) -> web.StreamResponse:
        """Send stream events with the behaviour's pacing, cutting the connection if told to;
        count streams that finish and streams whose client went away."""
        try:
            for index, data in enumerate(events):
                if b.cut_after is not None and index >= b.cut_after:
                    assert request.transport is not None
                    request.transport.close()
                    return response
                if b.end_after is not None and index >= b.end_after:
                    break
                await response.write(data)
                if b.chunk_delay:
                    await asyncio.sleep(b.chunk_delay)
            await response.write_eof()
            self._count(request, "completed_streams")
        except (ConnectionResetError, asyncio.CancelledError):
            self._count(request, "disconnects")
            raise
        except (ConnectionError, RuntimeError):  # aiohttp: the transport closed under a write
            self._count(request, "disconnects")
        return response

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        """Anthropic's Messages API: a text answer, or a tool_use when tools are offered and the
        last turn is not a tool result."""
        body = await self._record(request)
        b = self._next()
        early = await self._prelude(request, b, anthropic=True)
        if early is not None:
            return early
        last = body["messages"][-1]["content"]
        answered = isinstance(last, list) and any(p.get("type") == "tool_result" for p in last)
        functions = [t for t in body.get("tools") or [] if t.get("type") in (None, "custom")]
        names = [t["name"] for t in functions]
        wanted = b.tool if b.tool is not None else b.tool_name
        chosen = wanted if wanted in names else names[0] if names and wanted is None else None
        tool = chosen if not answered else None
        thinks = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
        shape = "tool_use" if tool else "thinking" if thinks else ""
        scripted_input = (
            b.tool_input
            if b.tool_input is not None
            else json.loads(b.tool_arguments)
            if b.tool_arguments is not None
            else None
        )
        if not body.get("stream"):
            message = recorded.reply("anthropic", "message_" + shape if shape else "message")
            message["model"] = body["model"]
            for block in message["content"]:
                if block["type"] == "tool_use":
                    block["name"] = tool
                    if scripted_input is not None:
                        block["input"] = scripted_input
            return web.json_response(message, headers=b.headers)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events = []
        given = False  # the tool input, when given, goes out whole in the first delta
        for item in recorded.reply("anthropic", "stream_" + shape if shape else "stream"):
            data = item["data"]
            if "message" in data:
                data["message"]["model"] = body["model"]
            if data.get("content_block", {}).get("type") == "tool_use":
                data["content_block"]["name"] = tool
            delta = data.get("delta", {})
            if delta.get("type") == "input_json_delta" and scripted_input is not None:
                delta["partial_json"] = "" if given else json.dumps(scripted_input)
                given = True
            events.append(f"event: {item['event']}\ndata: {json.dumps(data)}\n\n".encode())

        def event(kind: str, data: dict[str, Any]) -> bytes:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

        if b.stream_error is not None:  # message_start, then an error event
            kind = b.error_code or "overloaded_error"
            failed = event("error", {"error": {"type": kind, "message": b.stream_error}})
            return await self._write_events(request, response, [events[0], failed], b)
        if b.stream_bytes is not None:  # text deltas inside the first block
            delta = {"type": "text_delta", "text": "z" * 1000}
            pad = event("content_block_delta", {"index": 0, "delta": delta})
            return await self._write_events(
                request, response, _padded(events, 3, pad, b.stream_bytes), b
            )
        return await self._write_events(request, response, events, b)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        """OpenAI's Responses API: a text answer, or a function call when function tools are
        offered and the last input item is not a function call's output. A previous_response_id
        it did not answer with is a 400, as OpenAI's own (the state lives with one upstream)."""
        body = await self._record(request)
        b = self._next()
        early = await self._prelude(request, b)
        if early is not None:
            return early
        previous = body.get("previous_response_id")
        if previous is not None and previous not in self.response_ids:
            error = recorded.reply("openai", "error")
            error["error"].update(
                message=f"Previous response with id '{previous}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
            return web.json_response(error, status=400)
        items = body.get("input")
        last = items[-1] if isinstance(items, list) and items else {}
        answered = isinstance(last, dict) and last.get("type") == "function_call_output"
        tools = [t["name"] for t in body.get("tools") or [] if t.get("type") == "function"]
        if b.tool_name is not None:
            tools = [t for t in tools if t == b.tool_name]
        tool = tools[0] if tools and not answered else None
        response_id = f"resp_fake_{len(self.response_ids) + 1}"
        self.response_ids.add(response_id)

        def fill(response: dict[str, Any]) -> dict[str, Any]:
            response.update(id=response_id, model=body.get("model", ""))
            response["previous_response_id"] = previous
            for item in response["output"]:
                if item["type"] == "function_call":
                    item["name"] = tool
                    if b.tool_arguments is not None:
                        item["arguments"] = b.tool_arguments
                elif item["type"] == "message" and item["content"][0]["text"]:
                    if answered:
                        item["content"][0]["text"] = f"The tool said: {last.get('output')}"
                    if b.content is not None:
                        item["content"][0]["text"] = "".join(b.content)
            return response

        if not body.get("stream"):
            name = "response_function_call" if tool else "response"
            return web.json_response(fill(recorded.reply("openai", name)), headers=b.headers)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        name = "response_stream_function_call" if tool else "response_stream"
        events = []
        for event in recorded.reply("openai", name)["events"]:
            if "response" in event:
                fill(event["response"])
            if event.get("item", {}).get("type") == "function_call":
                event["item"]["name"] = tool
                if b.tool_arguments is not None and event["item"]["arguments"]:
                    event["item"]["arguments"] = b.tool_arguments
            if b.tool_arguments is not None and event["type"].startswith(
                "response.function_call_arguments."
            ):
                key = "delta" if event["type"].endswith("delta") else "arguments"
                if key == "delta" and event["sequence_number"] > 3:
                    continue  # the scripted arguments go in the first delta
                event[key] = b.tool_arguments
            events.append(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        if b.stream_error is not None:  # response.created, then an error event
            error = {"type": "error", "code": b.error_code, "message": b.stream_error}
            failed = f"event: error\ndata: {json.dumps(error)}\n\n".encode()
            return await self._write_events(request, response, [events[0], failed], b)
        return await self._write_events(request, response, events, b)

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        """Anthropic's token counting: the recorded count, whatever the request."""
        await self._record(request)
        b = self._next()
        early = await self._prelude(request, b, anthropic=True)
        if early is not None:
            return early
        return web.json_response(recorded.reply("anthropic", "count_tokens"))

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        b = self._next()
        early = await self._prelude(request, b)
        if early is not None:
            return early
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        reply = recorded.reply("openai", "embeddings")
        (vector,) = reply["data"]
        reply["data"] = [{**vector, "index": i} for i, _ in enumerate(items)]
        reply["model"] = body.get("model", "")
        reply["usage"] = {"prompt_tokens": 3 * len(items), "total_tokens": 3 * len(items)}
        return web.json_response(reply)


def _padded(events: list[bytes], at: int, pad: bytes, size: int) -> Iterator[bytes]:
    """``events`` with copies of ``pad`` put in at index ``at`` until about ``size`` bytes in
    all, made as they are written: a stream of any size without holding it."""
    count = max(0, (size - sum(map(len, events))) // len(pad))
    return chain(events[:at], repeat(pad, count), events[at:])
