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

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple, TypeVar

from starlette.types import Receive, Scope, Send

from gateway import tracing
from gateway.api import access, cached, validation
from gateway.api.asgi import JSON_HEADERS, read_json, send_body, send_stream, unless_disconnected
from gateway.api.errors import Renderer, anthropic_body, openai_body
from gateway.api.messages import MessagesCall
from gateway.auth import Authenticator
from gateway.cache.responses import ResponseCache, Route
from gateway.config import Deployment
from gateway.errors import (
    GuardrailBlocked,
    GuardrailUnavailable,
    InvalidRequest,
    ModelNotFound,
    PermissionDenied,
    UpstreamError,
)
from gateway.governance.admission import Admission
from gateway.governance.audit import Actor, AuditLog, AuditQueue
from gateway.governance.core import Governance, Kind
from gateway.governance.refusals import record_refusal
from gateway.governance.streams import CountingStream, reply_tokens
from gateway.guardrails.pipeline import AUDIT_ACTION, Evidence, Guardrails
from gateway.guardrails.policy import Policy
from gateway.routing.router import Plan, Router
from gateway.store.keys import KeyRecord
from gateway.values import Reply, Stream
from gateway.wire import cohere as cohere_wire
from gateway.wire.anthropic import ingress
from gateway.wire.anthropic.streams import AnthropicEventStream

T = TypeVar("T")
WILDCARD_NAME = re.compile(r"[A-Za-z0-9._:/@-]{1,256}")
LOG = logging.getLogger("sealgate.guardrails")
GUARDRAILS_ACTOR = Actor("guardrails", "gateway")  # who the audit rows of findings name

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

    async def answer(
        self, model: str, reply: Reply, deployment: Deployment, admission: Admission
    ) -> bytes:
        """The answer stages over a complete chat completion, for every route that asks chat
        (chat, Messages, Responses, legacy completions): the built-in response stage, then the
        policy's webhook on answers. The body as it may go out (masked where the policy masks).
        A block, or a webhook that cannot answer under fail-closed, settles the call with its
        code (the upstream was paid) before it is raised."""
        guardrails, policy, evidence = self
        try:
            answer = guardrails.check_reply(policy, evidence, reply.body)
            await guardrails.consult_reply(policy, model, answer, evidence)
        except (GuardrailBlocked, GuardrailUnavailable) as exc:
            admission.guardrails = evidence.summary()
            await admission.finish(reply.usage, deployment, exc.code, reply_tokens(reply))
            raise
        admission.guardrails = evidence.summary()
        return answer


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
        audit: AuditLog | None = None,
    ) -> None:
        self.router = router
        self.cache = cache
        self.governance = governance
        self.auth = auth
        self.limit = max_body_bytes
        self.guardrails = guardrails if guardrails else None
        # the guardrails' findings, to the audit chain (outlives a reload, as the log does)
        self.findings = AuditQueue(audit, "guardrail findings") if audit is not None else None
        self.routes: dict[str, Handler] = {
            "/v1/chat/completions": self.chat,
            "/v1/embeddings": self.embeddings,
            "/v1/messages": self.messages,
            "/v1/rerank": self.rerank,
            "/v1/messages/count_tokens": self.count_tokens,
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

    def _resolve(
        self, router: Router, record: KeyRecord, body: dict[str, Any], requested: str
    ) -> str:
        """The group that serves ``requested`` for this key (issue 14: an alias, or a wildcard
        group such as ``anthropic/*``); ``body["model"]`` becomes the model it means. The key
        must allow the name asked for or the model it means."""
        if requested in router.groups:
            self._allow(router, record, requested)
            return requested
        found = router.resolve(requested)
        if found is None:
            raise ModelNotFound(f"model {requested!r} does not exist", param="model")
        model, group = found
        if not (record.allows(requested) or record.allows(model)):
            raise PermissionDenied(f"this key may not use model {requested!r}", param="model")
        if model != group and not WILDCARD_NAME.fullmatch(model):
            raise InvalidRequest(
                f"model {requested!r}: a name a wildcard serves is letters, digits and . _ - : / @",
                param="model",
            )
        body["model"] = model
        return group

    # --- guardrails (gateway.guardrails): the request stage here, the answer stages in _complete
    async def _guard(
        self, record: KeyRecord, model: str, body: dict[str, Any], headers: Mapping[bytes, bytes]
    ) -> Guarded | None:
        """The request stage, before anything is reserved: blocks, or masks ``body`` in place.
        The policy the answer stages run under and what was found so far, or None when no
        policy applies (then nothing else is paid). A block leaves a spend record (nothing
        charged, status ``guardrail_blocked``, the evidence) before it is answered."""
        guardrails = self.guardrails
        if guardrails is None:
            return None
        team = self.governance.snapshot.teams.get(record.team_id) if record.team_id else None
        policy = guardrails.policy_for(record, model, team.metadata if team is not None else None)
        if policy is None:
            return None
        started = time.perf_counter()
        evidence = self.evidence(record, model)
        try:
            guardrails.check_request(policy, body, evidence)
            await guardrails.consult(policy, model, body, evidence)
        except (GuardrailBlocked, GuardrailUnavailable) as exc:
            try:
                await record_refusal(
                    self.governance,
                    record,
                    model,
                    headers,
                    exc.code,
                    evidence.summary(),
                    (time.perf_counter() - started) * 1000,
                )
            except Exception:  # the refusal still goes out as itself, not as a 500
                LOG.exception("the spend record of a request the guardrails refused was lost")
            raise
        return Guarded(guardrails, policy, evidence)

    def evidence(self, record: KeyRecord, model: str) -> Evidence:
        """A request's evidence, its audit rows naming the key, the model and the request id."""
        about: dict[str, Any] = {"model": model}
        if (seen := access.current()) is not None:
            about["request_id"] = seen.request_id
        findings = self.findings
        if findings is None:
            return Evidence(subject=f"key:{record.id}", about=about)

        def audit(target: str, detail: dict[str, Any]) -> None:
            findings.add(GUARDRAILS_ACTOR, AUDIT_ACTION, target, detail)

        return Evidence(audit=audit, subject=f"key:{record.id}", about=about)

    async def drain(self) -> None:
        """Wait for the audit rows of findings still queued (at shutdown)."""
        if self.findings is not None:
            await self.findings.drain()

    async def _admit(
        self,
        router: Router,
        record: KeyRecord,
        model: str,
        body: dict[str, Any],
        headers: Mapping[bytes, bytes],
        kind: Kind,
        hit: bool = False,
    ) -> tuple[Admission, Plan]:
        """Limits and budgets, and the first deployment's limits, reserved before routing
        (settled, with the spend record durable, before the answer goes out: governance/); the
        plan is the order routing follows. A request the cache answers (``hit``) reserves no
        deployment's limits: no deployment serves it (docs/routing.md)."""
        plan = router.plan(model, stream=bool(body.get("stream")), key=record)
        first = None if hit else plan[0].deployment
        with tracing.timed("sealgate.limits.duration"):  # observability (issue 17)
            admission = await self.governance.admit(record, model, body, headers, kind, first)
        # observability (issue 17): the spend record it settles into, for the access log
        if (seen := access.current()) is not None:
            seen.admission = admission
        return admission, plan

    async def chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        router, limit = self.router, self.limit
        headers = dict(scope["headers"])
        record = await self._caller(headers.get(b"authorization"))
        body: dict[str, Any] = await read_json(receive, headers, limit)
        model = self._resolve(router, record, body, validation.check_chat(body))
        guarded = await self._guard(record, model, body, headers)
        await self._complete(router, receive, send, headers, body, model, record, guarded, False)

    async def _anthropic_request(
        self, scope: Scope, receive: Receive, count: bool
    ) -> tuple[Router, dict[bytes, bytes], KeyRecord, MessagesCall, str]:
        router, limit = self.router, self.limit
        headers = dict(scope["headers"])
        api_key = headers.get(b"x-api-key")  # the Anthropic SDKs' header
        record = await self._caller(
            b"Bearer " + api_key if api_key else headers.get(b"authorization")
        )
        raw: dict[str, Any] = await read_json(receive, headers, limit)
        ingress.refuse_steering(raw)
        validation.check_fields(raw, ingress.COUNT_FIELDS if count else ingress.FIELDS)
        ingress.check(raw, count)
        translated = ingress.translate(raw)
        if count:  # the internal body needs what count_tokens leaves out
            translated.body["max_tokens"] = 1
        body = translated.body
        group = self._resolve(router, record, body, validation.check_chat(body))
        raw["model"] = body["model"]  # what an alias or a wildcard resolved to (issue 14)
        call = MessagesCall(raw, translated, headers.get(b"anthropic-beta"))
        return router, headers, record, call, group

    async def messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        router, headers, record, call, model = await self._anthropic_request(scope, receive, False)
        body = call.translated.body
        guarded = await self._guard(record, model, body, headers)
        if guarded is not None:
            # the guardrails read (and mask) the translated body, so every deployment gets it
            refusal = call.translated.refusal("this key's guardrail policy reads requests as chat")
            if refusal is not None:
                raise refusal
        await self._complete(router, receive, send, headers, body, model, record, guarded, call)

    async def count_tokens(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /v1/messages/count_tokens``: no tokens are generated, so nothing is reserved
        or spent (docs/anthropic.md); the key and its models are checked as for messages."""
        router, _, _, call, group = await self._anthropic_request(scope, receive, True)
        reply, deployment = await unless_disconnected(
            receive, router.messages(group, call.count(), operation="count_tokens")
        )
        await send_body(send, 200, reply.body, JSON_HEADERS + call.headers(deployment))

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
        messages: MessagesCall | bool,
    ) -> None:
        anthropic = bool(messages)
        # a Messages call served per deployment (gateway/api/messages.py); under guardrails the
        # translated chat body goes through the chat path, read by the guardrails, as before
        native = messages if isinstance(messages, MessagesCall) and guarded is None else None
        # -- the response cache (gateway/api/cached.py): looked up before admission, so that a
        # hit reserves only what a hit uses; counted, settled and answered after it --
        route: Route = "messages" if anthropic else "chat"
        keyed = messages.cache_body() if isinstance(messages, MessagesCall) else body
        lookup = cached.lookup(self.cache, route, record, keyed, headers)
        hit = await cached.find(lookup)
        admission, plan = await self._admit(
            router, record, model, body, headers, "chat", hit is not None
        )
        if guarded is not None:
            admission.guardrails = guarded.evidence.summary()
        if await cached.answered(lookup, hit, receive, send, admission):
            return
        if isinstance(messages, MessagesCall):  # admission estimated the prompt already
            messages.input_estimate = admission.estimate.prompt_tokens
        extra = cached.MISS if lookup is not None else []
        # --
        # observability (issue 17): content on the span only for a team that asked, redacted
        content = access.content_traced(self.governance, admission.team_id)
        if content:
            tracing.record_input(body.get("messages"))
        if body.get("stream"):
            if native is not None:
                call = router.messages(model, native.attempt(True), admission.gate, plan, True)
                upstream, deployment = await routed(receive, admission, call)
                extra = extra + native.headers(deployment)
            else:
                upstream, deployment = await routed(
                    receive, admission, router.chat_stream(model, body, admission.gate, plan)
                )
                if isinstance(messages, MessagesCall):  # translated: what it left out, named
                    extra = extra + messages.headers(deployment)
            # observability (issue 17): the stream's finish reasons on the request's span
            counting = CountingStream(tracing.finish_reasons(upstream))
            stream: Stream = counting
            if guarded is not None:
                stream = guarded.guardrails.stream(guarded.policy, guarded.evidence, counting)
            if anthropic and native is None:
                estimate = messages.input_estimate if isinstance(messages, MessagesCall) else 0
                stream = AnthropicEventStream(stream, body["model"], estimate)
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
        if native is not None:
            reply: Reply
            reply, deployment = await routed(
                receive,
                admission,
                router.messages(model, native.attempt(False), admission.gate, plan),
            )
            await admission.finish(reply.usage, deployment, "ok", reply_tokens(reply))
            await cached.keep(lookup, "body", reply.body)
            headers_out = JSON_HEADERS + extra + native.headers(deployment)
            await send_body(send, 200, reply.body, headers_out)
            return
        reply, deployment = await routed(
            receive, admission, router.chat(model, body, admission.gate, plan)
        )
        answer = reply.body
        # observability (issue 17): response model, finish reasons, from the adapter's parse
        tracing.record_reply(answer, reply.parsed)
        if guarded is not None:
            answer = await guarded.answer(model, reply, deployment, admission)
        if content:
            tracing.record_output(answer)
        if isinstance(messages, MessagesCall):
            try:
                answer = messages.message_of(answer, deployment.name)
            except UpstreamError:
                await admission.finish(
                    reply.usage, deployment, "upstream_error", reply_tokens(reply)
                )
                raise
            extra = extra + messages.headers(deployment)
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
        model = self._resolve(router, record, body, validation.check_embeddings(body))
        guarded = await self._guard(record, model, body, headers)
        lookup = cached.lookup(self.cache, "embeddings", record, body, headers)
        hit = await cached.find(lookup)
        admission, plan = await self._admit(
            router, record, model, body, headers, "embeddings", hit is not None
        )
        if guarded is not None:
            admission.guardrails = guarded.evidence.summary()
        if await cached.answered(lookup, hit, receive, send, admission):
            return
        reply, deployment = await routed(
            receive, admission, router.embeddings(model, body, admission.gate, plan)
        )
        await admission.finish(reply.usage, deployment, "ok", 0)
        await cached.keep(lookup, "body", reply.body)
        extra = cached.MISS if lookup is not None else []
        await send_body(send, 200, reply.body, JSON_HEADERS + extra)

    async def rerank(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /v1/rerank`` in Cohere's request and answer shape (issue 15), admitted like an
        embeddings call over the query and the documents."""
        router, limit = self.router, self.limit
        headers = dict(scope["headers"])
        record = await self._caller(headers.get(b"authorization"))
        body: dict[str, Any] = await read_json(receive, headers, limit)
        model = cohere_wire.check_rerank(body)
        self._allow(router, record, model)
        estimated = {"input": [body["query"], *cohere_wire.texts_of(body)]}
        admission, plan = await self._admit(router, record, model, estimated, headers, "embeddings")
        reply, deployment = await routed(
            receive, admission, router.rerank(model, body, admission.gate, plan)
        )
        await admission.finish(reply.usage, deployment, "ok", 0)
        await send_body(send, 200, reply.body, JSON_HEADERS)
