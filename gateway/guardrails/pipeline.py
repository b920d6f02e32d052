"""The guardrail pipeline: which policy a request runs under, and the request and answer stages.

    Guardrails.policy_for(record, model)    key, then team, then model, then the default; None
                                            when nothing applies (and the request pays nothing)
    Guardrails.check_request(policy, body)  the request's text, before the upstream sees it
    Guardrails.check_reply(policy, body)    a complete answer, before the client sees it
    Guardrails.stream(policy, stream)       a streamed answer (``streaming.GuardedStream``)

A stage either raises ``GuardrailBlocked`` (naming the detector, never the match) or returns what
it found as ``Evidence``: detector names and counts, never the matched text. Evidence goes to the
metrics (``sealgate_guardrail_findings_total``), to one log line, to the audit log (one row per
stage that found something: the stage, the policy, each detector's count and action, what
blocked; through ``Evidence.audit``, which ``gateway.api`` connects to the audit chain) and to
whoever asked (``gateway.api.inference`` puts it in the spend record).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config import guardrails as config
from gateway.errors import GuardrailBlocked, PermissionDenied
from gateway.guardrails.policy import SECRET_DETECTORS, SIZE, Policy, compile_policy
from gateway.guardrails.streaming import GuardedStream
from gateway.guardrails.webhook import Webhook
from gateway.metrics import METRICS
from gateway.store.keys import KeyRecord
from gateway.values import Stream

LOG = logging.getLogger("sealgate.guardrails")
KEY_METADATA = "guardrail_policy"  # a key's own policy, in the metadata the admin API sets
FINDINGS = METRICS.counter(
    "sealgate_guardrail_findings_total",
    "guardrail findings by detector, action and stage (never what was found)",
)


AuditSink = Callable[[str, dict[str, Any]], None]  # (target, detail): one audit row
AUDIT_ACTION = "guardrail.findings"


@dataclass
class Evidence:
    """What the stages of one request found: per detector, how many; and what blocked, if any.
    ``subject`` (the key, ``key:<id>``) and ``about`` (the model, the request id) go with each
    audit row ``audit`` is given."""

    counts: Counter[str] = field(default_factory=Counter)
    blocked: str | None = None
    audit: AuditSink | None = None
    subject: str = ""
    about: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """``card=1,email=2``: the form the spend record and the log line carry."""
        return ",".join(f"{name}={n}" for name, n in sorted(self.counts.items()))


def record(
    policy: Policy,
    stage: str,
    found: Counter[str],
    evidence: Evidence | None,
    blocked: str | None = None,
) -> None:
    """Count ``found`` in the metrics, the log, ``evidence`` and its audit sink; ``blocked``,
    the detector that blocked."""
    if not found:
        return
    actions: dict[str, str] = {}
    for name, count in found.items():
        action = policy.actions.get(name, "block")  # size, a webhook: always a block
        actions[name] = action
        FINDINGS[(("detector", name), ("action", action), ("stage", stage))] += count
    if evidence is not None:
        evidence.counts.update(found)
        if blocked is not None:
            evidence.blocked = blocked
        if evidence.audit is not None:
            detail = {
                **evidence.about,
                "stage": stage,
                "policy": policy.name,
                "findings": dict(sorted(found.items())),
                "actions": dict(sorted(actions.items())),
                "blocked": blocked,
            }
            evidence.audit(evidence.subject, detail)
    LOG.info(
        "guardrail policy %s, %s stage: %s",
        policy.name,
        stage,
        ",".join(f"{name}={n}" for name, n in sorted(found.items())),
    )


def _text_slots(body: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """(container, key) of every text of a chat or embeddings request, so a masked text is put
    back where it came from."""
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield message, "content"
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part, "text"
        yield from _tool_slots(message.get("tool_calls"))
    value = body.get("input")
    if isinstance(value, str):
        yield body, "input"
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                yield value, index


def _tool_slots(calls: Any) -> Iterator[tuple[Any, Any]]:
    for call in calls or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            yield function, "arguments"


def _answer(body: bytes) -> dict[str, Any] | None:
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _reply_slots(answer: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """(container, key) of every text of a chat completion: each choice's content and tool-call
    arguments."""
    for choice in answer.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        if isinstance(message.get("content"), str):
            yield message, "content"
        yield from _tool_slots(message.get("tool_calls"))


def json_slots(value: Any) -> Iterator[tuple[Any, Any]]:
    """(container, key) of every string inside ``value`` (dicts and lists, walked without
    recursion, so depth costs no stack)."""
    stack = [value]
    while stack:
        item = stack.pop()
        pairs: Iterator[tuple[Any, Any]]
        if isinstance(item, dict):
            pairs = iter(item.items())
        elif isinstance(item, list):
            pairs = enumerate(item)
        else:
            continue
        for key, inner in pairs:
            if isinstance(inner, str):
                yield item, key
            elif isinstance(inner, dict | list):
                stack.append(inner)


def _apply(
    policy: Policy, stage: str, slots: list[tuple[Any, Any]], evidence: Evidence | None
) -> bool:
    """Inspect every slot; raise on a block, mask in place. Whether anything was masked."""
    found: Counter[str] = Counter()
    changes: list[tuple[Any, Any, str]] = []
    for container, key in slots:
        text = container[key]
        matches = policy.inspect(text)
        if not matches:
            continue
        found.update(m.detector for m in matches)
        blocked = policy.blocking(matches)
        if blocked is not None:
            record(policy, stage, found, evidence, blocked)
            raise GuardrailBlocked(blocked, stage)
        new = policy.mask(text, matches)
        if new != text:
            changes.append((container, key, new))
    record(policy, stage, found, evidence)
    for container, key, new in changes:
        container[key] = new
    return bool(changes)


class Guardrails:
    """The compiled policies of the config's ``guardrails`` section, and who runs under which."""

    def __init__(self, section: config.Guardrails) -> None:
        self.policies = {name: compile_policy(name, p) for name, p in section.policies.items()}
        self.default = section.default
        self.keys = dict(section.keys)
        self.teams = dict(section.teams)
        self.models = dict(section.models)
        self.webhooks = {
            name: Webhook(name, p.webhook, SECRET_DETECTORS)
            for name, p in self.policies.items()
            if p.webhook is not None
        }

    def __bool__(self) -> bool:
        return bool(self.policies) and bool(self.default or self.keys or self.teams or self.models)

    def policy_for(
        self, record: KeyRecord, model: str, team: Mapping[str, Any] | None = None
    ) -> Policy | None:
        """The key's own (``guardrail_policy`` in the metadata the admin API gave it, audited
        with the key), then the config's for the key, then the team's own (the same entry in
        the team's metadata, ``team``, set through the admin API and audited), then the
        config's team, model and default. A key or team that names a policy the config does
        not have is refused: a policy is never silently dropped."""
        name = self._named(record.metadata, "key") or self.keys.get(record.id)
        if name is None and record.team_id:
            name = self._named(team or {}, "team") or self.teams.get(record.team_id)
        name = name or self.models.get(model) or self.default
        return self.policies[name] if name is not None else None

    def _named(self, metadata: Mapping[str, Any], owner: str) -> str | None:
        named = metadata.get(KEY_METADATA)
        if named is None:
            return None
        if not isinstance(named, str) or named not in self.policies:
            raise PermissionDenied(
                f"this {owner} names a guardrail policy the gateway does not have; "
                f"ask the operator to fix the {owner}'s guardrail_policy",
                code="guardrail_policy_unknown",
            )
        return named

    def check_request(
        self, policy: Policy, body: dict[str, Any], evidence: Evidence | None = None
    ) -> None:
        """The request stage: refuse a request over the size limit or with a blocked finding;
        mask the rest in ``body`` itself."""
        if "request" not in policy.stages:
            return
        slots = list(_text_slots(body))
        if sum(len(container[key]) for container, key in slots) > policy.max_chars:
            record(policy, "request", Counter({SIZE: 1}), evidence, SIZE)
            raise GuardrailBlocked(SIZE, "request")
        _apply(policy, "request", slots, evidence)

    def check_values(
        self, policy: Policy, stage: str, gate: str, value: Any, evidence: Evidence | None
    ) -> None:
        """A stage over every string inside a JSON value (an MCP tool call's arguments or
        result), masked in place; ``gate`` is the policy stage it belongs to (``request`` for
        what goes to an upstream, ``response`` for what comes back)."""
        if gate in policy.stages:
            _apply(policy, stage, list(json_slots(value)), evidence)

    async def consult(
        self, policy: Policy, model: str, body: dict[str, Any], evidence: Evidence | None = None
    ) -> None:
        """The policy's external guardrail, after the built-in request stage (so it sees the
        request as the upstream will)."""
        if policy.name not in self.webhooks:
            return
        texts = [container[key] for container, key in _text_slots(body)]
        await self._ask(policy, "request", model, texts, evidence)

    async def consult_reply(
        self, policy: Policy, model: str, body: bytes, evidence: Evidence | None = None
    ) -> None:
        """The policy's external guardrail on a complete answer (after the built-in response
        stage: it sees what the client would): its texts and tool-call arguments."""
        if policy.name not in self.webhooks:
            return
        answer = _answer(body)
        if answer is not None:
            texts = [c[k] for c, k in _reply_slots(answer)]
            await self._ask(policy, "response", model, texts, evidence)

    async def _ask(
        self, policy: Policy, stage: str, model: str, texts: list[str], evidence: Evidence | None
    ) -> None:
        webhook = self.webhooks.get(policy.name)
        if webhook is None or stage not in policy.stages or stage not in webhook.settings.stages:
            return
        try:
            await webhook.check(stage, model, texts)
        except GuardrailBlocked as exc:
            record(policy, stage, Counter({exc.detector: 1}), evidence, exc.detector)
            raise

    async def close(self) -> None:
        for webhook in self.webhooks.values():
            await webhook.close()

    def check_reply(self, policy: Policy, evidence: Evidence | None, body: bytes) -> bytes:
        """The response stage over a complete chat completion: the body as it may go out."""
        if "response" not in policy.stages:
            return body
        answer = _answer(body)
        if answer is None:
            return body  # not JSON: the route's own translation refuses it
        slots = list(_reply_slots(answer))
        if _apply(policy, "response", slots, evidence):
            return json.dumps(answer).encode()
        return body

    def stream(self, policy: Policy, evidence: Evidence | None, inner: Stream) -> Stream:
        """The response stage over a stream of chat completion chunks."""
        if "response" not in policy.stages:
            return inner

        def on_found(found: Counter[str], blocked: str | None = None) -> None:
            record(policy, "stream", found, evidence, blocked)

        return GuardedStream(inner, policy, on_found)
