"""``POST /v1/responses``: the OpenAI Responses API, through the same path as chat.

The caller, the body cap, the key's models (aliases and wildcards included), the guardrails'
request stage, limits and budgets, routing (strategy, retries, fallbacks, breakers), the secret
broker and the egress guard are the chat route's (``gateway.api.inference``); what differs is
only what each deployment is called with:

- an **OpenAI or Azure** deployment gets the Responses body as it came (``model`` mapped to the
  deployment's), and its answer or event stream goes back as it came, with ``usage`` read out;
- **every other** deployment (Anthropic, OpenAI-compatible servers, the mock) gets the chat body
  ``gateway.wire.responses`` translates it to, and its answer is translated back.

When a guardrail policy applies to the key, every deployment gets the translated chat body: the
guardrails read and mask chat messages, and a pass-through would send what they did not see.

``previous_response_id`` (``conversations``): a response passed through is continued on the
deployment that made it (the upstream holds the state); a translated one is continued from the
turns the gateway kept (in memory, or in Redis for every replica), bounded and per key. The
response cache does not serve this route.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Receive, Scope, Send

from gateway.api import validation
from gateway.api.asgi import JSON_HEADERS, read_json, send_body, send_stream
from gateway.api.conversations import Conversations, MemoryConversations, Previous
from gateway.api.inference import Inference, routed
from gateway.errors import GatewayError, InvalidRequest, UpstreamError
from gateway.governance.streams import CountingStream, reply_tokens
from gateway.routing.router import Plan, Route
from gateway.secrets.secret import Secret
from gateway.values import Stream
from gateway.wire import responses as wire

# The providers whose deployments speak the Responses API themselves.
PASS_THROUGH = frozenset({"openai", "azure"})
IGNORED_TOOLS = b"x-sealgate-ignored-tools"


def render(exc: GatewayError) -> dict[str, Any]:
    return wire.error_event(exc.body())


def _estimate_body(body: dict[str, Any]) -> dict[str, Any]:
    """What admission estimates a request's tokens from when it has no chat translation (it
    goes to a pass-through deployment with parts only OpenAI understands)."""
    text = json.dumps([body.get("instructions"), body.get("input")])
    estimate: dict[str, Any] = {
        "model": body["model"],
        "messages": [{"role": "user", "content": text}],
    }
    if body.get("max_output_tokens") is not None:
        estimate["max_tokens"] = body["max_output_tokens"]
    return estimate


class Chosen:
    """What the attempt that answered called: set by each attempt, read after routing."""

    __slots__ = ("passed", "raw")

    def __init__(self) -> None:
        self.passed = False
        self.raw: Any = None


class ResponsesRoute:
    def __init__(self, inference: Inference, conversations: Conversations | None = None) -> None:
        self.inference = inference
        self.conversations = conversations if conversations is not None else MemoryConversations()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        inference = self.inference
        router, limit = inference.router, inference.limit
        headers = dict(scope["headers"])
        record = await inference._caller(headers.get(b"authorization"))
        body: dict[str, Any] = await read_json(receive, headers, limit)
        validation.check_fields(body, wire.FIELDS)
        group = inference._resolve(router, record, body, wire.check(body))
        held: Previous | None = None
        previous = body.get("previous_response_id")
        if isinstance(previous, str):
            held = await self.conversations.find(record.id, previous)
        history = held.history if held is not None else []
        translation: wire.Translation | None = None
        refusal: InvalidRequest | None = None
        try:
            translation = wire.request_to_chat(body, history)
            validation.check_chat(translation.chat)
        except InvalidRequest as exc:
            translation, refusal = None, exc
        chat = translation.chat if translation is not None else _estimate_body(body)
        guarded = await inference._guard(record, group, chat, headers)
        translate_all = guarded is not None or (held is not None and held.deployment is None)
        passable = any(r.deployment.provider in PASS_THROUGH for r in router.groups[group])
        if refusal is not None and (translate_all or not passable):
            raise refusal  # before anything is reserved: no deployment could take it as it is
        if guarded is not None and held is not None and held.deployment is not None:
            raise InvalidRequest(
                "this key's guardrail policy needs every request translated, and the previous "
                "response is held by an OpenAI deployment; send the conversation as input",
                param="previous_response_id",
            )
        admission, plan = await inference._admit(router, record, group, chat, headers, "chat")
        if guarded is not None:
            admission.guardrails = guarded.evidence.summary()
        if held is not None and held.deployment is not None:
            plan = self._pinned(plan, held.deployment, admission)
        chosen = Chosen()
        stream = bool(body.get("stream"))

        def passes(route: Route) -> bool:
            return not translate_all and route.deployment.provider in PASS_THROUGH

        async def call(route: Route, key: Secret | None) -> Any:
            adapter: Any = route.adapter
            chosen.passed = passes(route)
            if chosen.passed:
                method = adapter.responses_stream if stream else adapter.responses
                chosen.raw = await method(body, key)
                return chosen.raw
            if refusal is not None or translation is None:
                raise refusal or InvalidRequest("this request cannot be translated")
            method = adapter.chat_stream if stream else adapter.chat
            chosen.raw = await method(translation.chat, key)
            return chosen.raw

        if stream:
            upstream, deployment = await routed(
                receive, admission, router.run(group, call, admission.gate, plan, True)
            )
            counting = CountingStream(upstream)
            out: Stream = counting
            events: wire.ResponsesEventStream | None = None
            if not chosen.passed:
                assert translation is not None
                inner: Stream = counting
                if guarded is not None:
                    inner = guarded.guardrails.stream(guarded.policy, guarded.evidence, counting)
                events = wire.ResponsesEventStream(
                    inner, body, translation.tools, wire.new_id("resp")
                )
                out = events
            passed, raw = chosen.passed, chosen.raw

            async def finished(_: Stream, outcome: str) -> None:
                if guarded is not None:
                    admission.guardrails = guarded.evidence.summary()
                used = counting.charged(finished=outcome == "ok")
                await admission.finish(used, deployment, outcome, counting.counted)
                if outcome != "ok" or body.get("store") is False:
                    return
                if passed and getattr(raw, "response_id", None):
                    await self.conversations.passed_through(
                        record.id, raw.response_id, deployment.name
                    )
                elif events is not None and events.completed is not None:
                    assert translation is not None
                    await self._keep(record.id, translation, events.completed, previous)

            await send_stream(receive, send, out, finished, render, _said(translation, passed))
            return
        reply, deployment = await routed(
            receive, admission, router.run(group, call, admission.gate, plan, False)
        )
        if chosen.passed:
            await admission.finish(reply.usage, deployment, "ok", reply_tokens(reply))
            if body.get("store") is not False:
                response_id = _id_of(reply.body)
                if response_id is not None:
                    await self.conversations.passed_through(record.id, response_id, deployment.name)
            await send_body(send, 200, reply.body, JSON_HEADERS)
            return
        assert translation is not None
        answer = reply.body
        if guarded is not None:
            answer = await guarded.answer(group, reply, deployment, admission)
        try:
            # The adapter's own parse of its answer, unless a guardrail rewrote the answer.
            parsed = reply.parsed if answer is reply.body else None
            completion = parsed if parsed is not None else json.loads(answer)
            response = wire.response_from_chat(
                completion, body, translation.tools, reply.usage, wire.new_id("resp")
            )
        except (ValueError, AttributeError, TypeError, KeyError, IndexError, RecursionError):
            await admission.finish(reply.usage, deployment, "upstream_error", reply_tokens(reply))
            raise UpstreamError(
                f"deployment {deployment.name} answered with something that is not a chat "
                "completion"
            ) from None
        await admission.finish(reply.usage, deployment, "ok", reply_tokens(reply))
        if body.get("store") is not False:
            await self._keep(record.id, translation, response, previous)
        extra = _said(translation, False)
        await send_body(send, 200, json.dumps(response).encode(), JSON_HEADERS + extra)

    async def _keep(
        self,
        key_id: str,
        translation: wire.Translation,
        response: dict[str, Any],
        previous: Any,
    ) -> None:
        """A translated turn, for a follow-up: its own input and the answer, as chat messages."""
        turn = translation.turn + wire.output_messages(response.get("output") or [])
        parent = previous if isinstance(previous, str) else None
        await self.conversations.translated(key_id, response["id"], turn, parent)

    @staticmethod
    def _pinned(plan: Plan, deployment: str, admission: Any) -> Plan:
        """The plan of a follow-up to a passed-through response: its deployment only, no
        fallbacks (no other deployment holds the conversation)."""
        pinned = Plan(route for route in plan if route.deployment.name == deployment)
        if not pinned:
            error = InvalidRequest(
                f"previous_response_id: the deployment that holds it ({deployment}) does not "
                "serve this model now",
                param="previous_response_id",
                code="previous_response_not_found",
            )
            admission.fail(error)
            raise error
        pinned.fallbacks = {}
        pinned.allows = lambda _: False
        return pinned


def _said(translation: wire.Translation | None, passed: bool) -> list[tuple[bytes, bytes]]:
    """The header that names the hosted tools a translated deployment was not offered."""
    if passed or translation is None or not translation.tools.ignored:
        return []
    return [(IGNORED_TOOLS, ",".join(translation.tools.ignored).encode())]


def _id_of(body: bytes) -> str | None:
    try:
        found = json.loads(body).get("id")
    except (ValueError, AttributeError, RecursionError):
        return None
    return found if isinstance(found, str) else None
