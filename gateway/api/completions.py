"""``POST /v1/completions`` (the legacy API): a chat call on the chat route's path (caller, key
models, guardrails, limits and budgets, routing, secrets, egress), the prompt as one user turn
(``gateway.wire.completions``), the answer as a ``text_completion``. The response cache does
not serve this route."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Receive, Scope, Send

from gateway.api import validation
from gateway.api.asgi import JSON_HEADERS, read_json, send_body, send_stream
from gateway.api.errors import openai_body
from gateway.api.inference import Inference, routed
from gateway.errors import UpstreamError
from gateway.governance.streams import CountingStream, reply_tokens
from gateway.values import Stream
from gateway.wire import completions as wire


class CompletionsRoute:
    def __init__(self, inference: Inference) -> None:
        self.inference = inference

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        inference = self.inference
        router, limit = inference.router, inference.limit
        headers = dict(scope["headers"])
        record = await inference._caller(headers.get(b"authorization"))
        raw: dict[str, Any] = await read_json(receive, headers, limit)
        validation.check_fields(raw, wire.FIELDS)
        body = wire.request_to_chat(raw)
        group = inference._resolve(router, record, body, validation.check_chat(body))
        guarded = await inference._guard(record, group, body, headers)
        admission, plan = await inference._admit(router, record, group, body, headers, "chat")
        if guarded is not None:
            admission.guardrails = guarded.evidence.summary()
        if body.get("stream"):
            upstream, deployment = await routed(
                receive, admission, router.chat_stream(group, body, admission.gate, plan)
            )
            counting = CountingStream(upstream)
            inner: Stream = counting
            if guarded is not None:
                inner = guarded.guardrails.stream(guarded.policy, guarded.evidence, counting)

            async def finished(_: Stream, outcome: str) -> None:
                if guarded is not None:
                    admission.guardrails = guarded.evidence.summary()
                used = counting.charged(finished=outcome == "ok")
                await admission.finish(used, deployment, outcome, counting.counted)

            out = wire.TextCompletionStream(inner)
            await send_stream(receive, send, out, finished, openai_body)
            return
        reply, deployment = await routed(
            receive, admission, router.chat(group, body, admission.gate, plan)
        )
        answer = reply.body
        if guarded is not None:
            answer = await guarded.answer(group, reply, deployment, admission)
        try:
            completion = wire.completion_from_chat(json.loads(answer), reply.usage)
        except (ValueError, AttributeError, TypeError, KeyError, IndexError, RecursionError):
            await admission.finish(reply.usage, deployment, "upstream_error", reply_tokens(reply))
            raise UpstreamError(
                f"deployment {deployment.name} answered with something that is not a chat "
                "completion"
            ) from None
        await admission.finish(reply.usage, deployment, "ok", reply_tokens(reply))
        await send_body(send, 200, json.dumps(completion).encode(), JSON_HEADERS)
