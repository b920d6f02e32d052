"""The inference routes as raw ASGI: ``POST /v1/chat/completions``, ``/v1/embeddings`` and
``/v1/messages``.

These routes are what every application call goes through, so they skip the framework's routing,
dependency resolution and middleware and do only what the request needs: authenticate from the
in-memory cache (before anything of the body is read: a caller without a key learns nothing of how
bodies are checked), read the body with a cap as strict JSON, check it with the pure validation
functions, admit it (limits and budgets), route. The Anthropic-compatible ``/v1/messages`` is
translated to the same internal call (``gateway.wire.anthropic``) and back. Failures are answered
by the outer guard (``gateway.api.errors``) in the route's own shape.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple, TypeVar

from starlette.types import Receive, Scope, Send

from gateway import tracing
from gateway.api import access, cached, validation
from gateway.api.asgi import JSON_HEADERS, read_json, send_body, send_stream, unless_disconnected
from gateway.api.errors import Renderer, anthropic_body, openai_body
from gateway.auth import Authenticator
from gateway.cache.responses import ResponseCache, Route
from gateway.errors import GuardrailBlocked, ModelNotFound, PermissionDenied, UpstreamError
from gateway.governance.admission import Admission
from gateway.governance.core import Governance, Kind
from gateway.governance.streams import CountingStream, reply_tokens
from gateway.guardrails.pipeline import Evidence, Guardrails
from gateway.guardrails.policy import Policy
from gateway.routing.router import Plan, Router
from gateway.store.keys import KeyRecord
from gateway.values import Stream
from gateway.wire.anthropic import messages as anthropic_wire
from gateway.wire.anthropic.streams import AnthropicEventStream

T = TypeVar("T")

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


async def routed(receive: Receive, admission: Admission, call: Awaitable[T]) -> T:
    """Route the call (cancelled if the client goes away); if it fails, release what the
    admission reserved before the error goes on."""
    try:
        return await unless_disconnected(receive, call)
    except BaseException as exc:
        admission.fail(exc)
        raise


class Guarded(NamedTuple):
    """A request under a guardrail policy: the pipeline it read when it started (a reload may
    swap ``Inference.guardrails`` meanwhile), the policy, and what the stages found."""

    guardrails: Guardrails
    policy: Policy
    evidence: Evidence


class Inference:
    """The inference routes. ``router`` and ``limit`` may be replaced while serving (a config
    reload): each request reads them once, when it starts, and finishes on what it read."""

    def __init__(
        self,
        router: Router,
        governance: Governance,
        auth: Authenticator,
        max_body_bytes: int,
        cache: ResponseCache | None = None,
        guardrails: Guardrails | None = None,
    ) -> None:
        self.router = router
        self.cache = cache
        self.governance = governance
        self.auth = auth
        self.limit = max_body_bytes
        self.guardrails = guardrails if guardrails else None
        self.routes: dict[str, Handler] = {
            "/v1/chat/completions": self.chat,
            "/v1/embeddings": self.embeddings,
            "/v1/messages": self.messages,
        }

    def handler(self, scope: Scope) -> Handler | None:
        """The route for this request, or None when it is not an inference call."""
        if scope["method"] != "POST":
            return None
        return self.routes.get(scope["path"])

    async def _caller(self, authorization: bytes | None) -> KeyRecord:
        record = await self.auth.authenticate(
            authorization.decode("latin-1") if authorization is not None else None
        )
        # observability (issue 17): who is calling, for the access log
        if (seen := access.current()) is not None:
            seen.key = record
        return record

    def _allow(self, router: Router, record: KeyRecord, model: str) -> None:
        if model not in router.groups:
            raise ModelNotFound(f"model {model!r} does not exist", param="model")
        if not record.allows(model):
            raise PermissionDenied(f"this key may not use model {model!r}", param="model")

    # --- guardrails (gateway.guardrails): the request stage here, the answer stages in _complete
    async def _guard(self, record: KeyRecord, model: str, body: dict[str, Any]) -> Guarded | None:
        """The request stage, before anything is reserved: blocks, or masks ``body`` in place.
        The policy the answer stages run under and what was found so far, or None when no
        policy applies (then nothing else is paid)."""
        guardrails = self.guardrails
        policy = guardrails.policy_for(record, model) if guardrails is not None else None
        if guardrails is None or policy is None:
            return None
        evidence = Evidence()
        guardrails.check_request(policy, body, evidence)
        await guardrails.consult(policy, model, body, evidence)
        return Guarded(guardrails, policy, evidence)

    async def _admit(
        self,
        router: Router,
        record: KeyRecord,
        model: str,
        body: dict[str, Any],
        headers: Mapping[bytes, bytes],
        kind: Kind,
    ) -> tuple[Admission, Plan]:
        """Limits and budgets, and the first deployment's limits, reserved before routing
        (settled, with the spend record durable, before the answer goes out: governance/); the
        plan is the order routing follows."""
        plan = router.plan(model, stream=bool(body.get("stream")), key=record)
        with tracing.timed("sealgate.limits.duration"):  # observability (issue 17)
            admission = await self.governance.admit(
                record, model, body, headers, kind, plan[0].deployment
            )
        # observability (issue 17): the spend record it settles into, for the access log
        if (seen := access.current()) is not None:
            seen.admission = admission
        return admission, plan

    async def chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        router, limit = self.router, self.limit
        headers = dict(scope["headers"])
        record = await self._caller(headers.get(b"authorization"))
        body: dict[str, Any] = await read_json(receive, headers, limit)
        model = validation.check_chat(body)
        self._allow(router, record, model)
        guarded = await self._guard(record, model, body)
        await self._complete(router, receive, send, headers, body, model, record, guarded, False)

    async def messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        router, limit = self.router, self.limit
        headers = dict(scope["headers"])
        api_key = headers.get(b"x-api-key")  # the Anthropic SDKs' header
        record = await self._caller(
            b"Bearer " + api_key if api_key else headers.get(b"authorization")
        )
        raw: dict[str, Any] = await read_json(receive, headers, limit)
        validation.check_fields(raw, anthropic_wire.FIELDS)
        body = anthropic_wire.request_to_openai(raw)
        model = validation.check_chat(body)
        self._allow(router, record, model)
        guarded = await self._guard(record, model, body)
        await self._complete(router, receive, send, headers, body, model, record, guarded, True)

    async def _complete(
        self,
        router: Router,
        receive: Receive,
        send: Send,
        headers: Mapping[bytes, bytes],
        body: dict[str, Any],
        model: str,
        record: KeyRecord,
        guarded: Guarded | None,
        anthropic: bool,
    ) -> None:
        admission, plan = await self._admit(router, record, model, body, headers, "chat")
        if guarded is not None:
            admission.guardrails = guarded.evidence.summary()
        # -- the response cache (gateway/api/cached.py) --
        route: Route = "messages" if anthropic else "chat"
        lookup = cached.lookup(self.cache, route, record, body, headers)
        if await cached.answered(lookup, receive, send, admission):
            return
        extra = cached.MISS if lookup is not None else []
        # --
        # observability (issue 17): content on the span only for a team that asked, redacted
        content = access.content_traced(self.governance, admission.team_id)
        if content:
            tracing.record_input(body.get("messages"))
        if body.get("stream"):
            upstream, deployment = await routed(
                receive, admission, router.chat_stream(model, body, admission.gate, plan)
            )
            # observability (issue 17): the stream's finish reasons on the request's span
            counting = CountingStream(tracing.finish_reasons(upstream))
            stream: Stream = counting
            if guarded is not None:
                stream = guarded.guardrails.stream(guarded.policy, guarded.evidence, counting)
            stream = AnthropicEventStream(stream, model) if anthropic else stream
            recording = cached.Recording(stream, lookup) if lookup is not None else None

            async def finished(_: Stream, outcome: str) -> None:
                if guarded is not None:
                    admission.guardrails = guarded.evidence.summary()
                used = counting.charged(finished=outcome == "ok")
                await admission.finish(used, deployment, outcome, counting.counted)
                if recording is not None and outcome == "ok":
                    await recording.keep()

            render: Renderer = anthropic_body if anthropic else openai_body
            await send_stream(receive, send, recording or stream, finished, render, extra)
            return
        reply, deployment = await routed(
            receive, admission, router.chat(model, body, admission.gate, plan)
        )
        answer = reply.body
        tracing.record_reply(answer)  # observability (issue 17): response model, finish reasons
        if guarded is not None:
            try:
                answer = guarded.guardrails.check_reply(guarded.policy, guarded.evidence, answer)
            except GuardrailBlocked:
                admission.guardrails = guarded.evidence.summary()
                await admission.finish(
                    reply.usage, deployment, "guardrail_blocked", reply_tokens(reply)
                )
                raise
        if content:
            tracing.record_output(answer)
        if anthropic:
            try:
                message = anthropic_wire.message_from_openai(json.loads(answer), model)
            except (ValueError, AttributeError, TypeError, KeyError, IndexError, RecursionError):
                await admission.finish(
                    reply.usage, deployment, "upstream_error", reply_tokens(reply)
                )
                raise UpstreamError(
                    f"deployment {deployment.name} answered with something that is not a chat "
                    "completion"
                ) from None
            answer = json.dumps(message).encode()
        if guarded is not None:
            admission.guardrails = guarded.evidence.summary()
        await admission.finish(reply.usage, deployment, "ok", reply_tokens(reply))
        await cached.keep(lookup, "body", answer)
        await send_body(send, 200, answer, JSON_HEADERS + extra)

    async def embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        router, limit = self.router, self.limit
        headers = dict(scope["headers"])
        record = await self._caller(headers.get(b"authorization"))
        body: dict[str, Any] = await read_json(receive, headers, limit)
        model = validation.check_embeddings(body)
        self._allow(router, record, model)
        guarded = await self._guard(record, model, body)
        admission, plan = await self._admit(router, record, model, body, headers, "embeddings")
        if guarded is not None:
            admission.guardrails = guarded.evidence.summary()
        lookup = cached.lookup(self.cache, "embeddings", record, body, headers)
        if await cached.answered(lookup, receive, send, admission):
            return
        reply, deployment = await routed(
            receive, admission, router.embeddings(model, body, admission.gate, plan)
        )
        await admission.finish(reply.usage, deployment, "ok", 0)
        await cached.keep(lookup, "body", reply.body)
        extra = cached.MISS if lookup is not None else []
        await send_body(send, 200, reply.body, JSON_HEADERS + extra)
