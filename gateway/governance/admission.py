"""One request's reservations and their settlement.

``Governance.admit`` (core.py) reserves the request's counters and hands back an Admission. The
router asks ``gate`` before each deployment it tries (deployment limits); ``settle`` (or
``finish``) runs exactly once, when the answer is ready or a stream ends, and turns the
reservations into the actual usage and cost, then puts the spend record in the outbox.
``finish`` also waits until the record is durable, so that the answer goes out only then.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from gateway.config import Deployment
from gateway.errors import BudgetExceeded, GatewayError, RateLimited, UpstreamTooLarge
from gateway.governance.counters import Charge, Counters, CountersUnavailable, Outcome
from gateway.governance.estimate import Estimate
from gateway.governance.spend import SpendRecord
from gateway.metrics import METRICS
from gateway.values import Usage

if TYPE_CHECKING:
    from gateway.governance.core import Governance

WINDOW_SECONDS = 60
REFUSALS = METRICS.counter(
    "sealgate_limit_refusals_total", "requests refused by a rate limit or budget, by kind and scope"
)


class Slot(NamedTuple):
    """One counter a request charged: what kind, and what it reserved there."""

    charge: Charge
    kind: str  # requests | tokens | usd | in_flight
    scope: str  # e.g. key, team, deployment, budget:<id>
    reset_at: float


def ratelimit_headers(slots: list[Slot], values: tuple[int, ...], now: float) -> dict[str, str]:
    """OpenAI-style ``x-ratelimit-*`` headers from the tightest request and token counters."""
    headers: dict[str, str] = {}
    for kind in ("requests", "tokens"):
        best: tuple[int, Slot] | None = None
        for slot, value in zip(slots, values, strict=False):
            if slot.kind != kind:
                continue
            remaining = max(0, slot.charge.limit - value)
            if best is None or remaining < best[0]:
                best = (remaining, slot)
        if best is not None:
            remaining, slot = best
            headers[f"x-ratelimit-limit-{kind}"] = str(slot.charge.limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(remaining)
            headers[f"x-ratelimit-reset-{kind}"] = f"{max(0.0, slot.reset_at - now):.0f}s"
    return headers


def refusal(slots: list[Slot], outcome: Outcome, now: float, what: str) -> RateLimited:
    assert outcome.refused is not None
    slot = slots[outcome.refused]
    REFUSALS[(("kind", slot.kind), ("scope", slot.scope.split(" ")[0].split(":")[0]))] += 1
    found = outcome.values[outcome.refused]
    retry = max(1, math.ceil(slot.reset_at - now))
    headers = ratelimit_headers(slots, outcome.values, now)
    headers["Retry-After"] = str(retry)
    if slot.kind == "usd":
        return BudgetExceeded(
            f"the {slot.scope.split(':', 1)[1]} budget of this {what} is used up until it resets",
            headers=headers,
        )
    if slot.kind == "in_flight":
        message = (
            f"{slot.scope} limit of {slot.charge.limit} requests in flight at once reached; "
            "retry when one has finished"
        )
    elif slot.charge.amount > slot.charge.limit:
        message = (
            f"this request needs {slot.charge.amount} {slot.kind} but the {slot.scope} limit "
            f"is {slot.charge.limit} per minute"
        )
    else:
        message = (
            f"{slot.scope} limit of {slot.charge.limit} {slot.kind} per minute reached "
            f"({found} used); retry after {retry}s"
        )
    return RateLimited(message, headers=headers)


@dataclass
class Admission:
    governance: Governance
    request_id: str
    started: float
    key_id: str
    team_id: str | None
    user_id: str | None
    project: str | None
    tags: tuple[str, ...]
    model: str
    guess: Callable[[], Estimate]  # the request's token estimate, made when first asked for
    slots: list[Slot]
    local: bool
    # The first deployment, reserved with the request: its name, its slots, and the refusal
    # when it was full. Taken by the first gate() call for it.
    ahead: tuple[str, list[Slot], GatewayError | None] | None = None
    gated: list[tuple[str, list[Slot]]] = field(default_factory=list)
    tries: int = 0  # deployments the router was allowed to try
    last_tried: Deployment | None = None
    settled: bool = False
    record: SpendRecord | None = None  # the spend record, once settled (the access log's)
    guardrails: str = ""  # what the guardrails found, for the spend record: ``card=1,email=2``

    @property
    def estimate(self) -> Estimate:
        """The tokens reserved for the request: the same estimate every time it is asked."""
        return self.guess()

    async def gate(self, deployment: Deployment) -> GatewayError | None:
        """Reserve the deployment's own request and token counters; an error when it is full
        (the router then tries the next deployment)."""
        ahead = self.ahead
        if ahead is not None and ahead[0] == deployment.name:
            self.ahead = None  # reserved at admission; a retry on it reserves again
            _, slots, full = ahead
            if full is not None:
                return full
        else:
            g = self.governance
            slots = g.deployment_slots(deployment, self.estimate, g.clock())
            if slots:
                counters: Counters = g.counters
                try:
                    outcome = await counters.reserve([s.charge for s in slots])
                except CountersUnavailable:
                    return g.counters_down()
                if not outcome.ok:
                    return refusal(slots, outcome, g.clock(), "deployment")
        if slots:
            self.gated.append((deployment.name, slots))
        self.tries += 1
        self.last_tried = deployment
        return None

    def fail(self, exc: BaseException) -> None:
        """Settle a request that got no answer: nothing is charged, and the request counts are
        given back when no deployment was even tried. An answer the gateway refused for its
        size (``UpstreamTooLarge``) was work the upstream did: it is charged as reserved, to
        the deployment that sent it."""
        code = exc.code if isinstance(exc, GatewayError) else type(exc).__name__
        if isinstance(exc, UpstreamTooLarge) and self.last_tried is not None:
            used = Usage(self.estimate.prompt_tokens, self.estimate.completion_tokens)
            self.settle(used, self.last_tried, code)
            return
        self.settle(None, None, code, sent=self.tries > 0)

    async def finish(
        self,
        usage: Usage | None,
        deployment: Deployment | None,
        status: str,
        counted_completion: int | None = None,
    ) -> None:
        """Settle an answered request and wait until its spend record is durable (at most
        ``outbox.flush_seconds``): the answer is sent after this, so a hard kill of the process
        cannot lose the record of a request whose answer the client got. With
        ``outbox.durable_answers: false`` the record is only queued, as ``settle`` does."""
        record = self._settle(usage, deployment, status, counted_completion, True)
        if record is None:
            return
        outbox = self.governance.outbox
        if self.governance.settings.outbox.durable_answers:
            await outbox.write(record)
        else:
            outbox.put(record)

    def settle(
        self,
        usage: Usage | None,
        deployment: Deployment | None,
        status: str,
        counted_completion: int | None = None,
        sent: bool = True,
    ) -> SpendRecord | None:
        """Settle without waiting for the record (a request that got no answer)."""
        record = self._settle(usage, deployment, status, counted_completion, sent)
        if record is not None:
            self.governance.outbox.put(record)
        return record

    def _settle(
        self,
        usage: Usage | None,
        deployment: Deployment | None,
        status: str,
        counted_completion: int | None,
        sent: bool,
    ) -> SpendRecord | None:
        """Turn reservations into usage, give back what was not used, make the spend record.
        ``usage`` None means the upstream reported none: a stream is charged its counted
        tokens, a call that failed before an answer is charged nothing. ``sent`` False (no
        deployment had room) gives the request counts back too."""
        if self.settled:
            return None
        self.settled = True
        g = self.governance
        if usage is None:
            if counted_completion is not None:
                usage = Usage(self.estimate.prompt_tokens, counted_completion)
            else:
                usage = Usage()
        cost = g.cost(deployment, usage) if deployment is not None else 0
        tokens = usage.total_tokens
        deltas = [(s.charge.key, _delta(s, tokens, cost, sent)) for s in self.slots]
        served_at = max(
            (i for i, (name, _) in enumerate(self.gated) if deployment and name == deployment.name),
            default=-1,
        )  # a deployment tried twice was used the last time
        for index, (_, slots) in enumerate(self.gated):
            served = index == served_at
            for slot in slots:
                used, paid = (tokens, cost) if served else (0, 0)
                deltas.append((slot.charge.key, _delta(slot, used, paid, True)))
        if self.ahead is not None and self.ahead[2] is None:
            for slot in self.ahead[1]:  # reserved for a deployment that was never tried
                deltas.append((slot.charge.key, -slot.charge.amount))
        g.counters.adjust([d for d in deltas if d[1]], local=self.local)
        self.record = SpendRecord(
            id=self.request_id,
            at=g.clock(),
            key_id=self.key_id,
            team_id=self.team_id,
            user_id=self.user_id,
            project=self.project,
            tags=self.tags,
            model=self.model,
            deployment=deployment.name if deployment is not None else None,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            cost_nanos=cost,
            latency_ms=round((time.perf_counter() - self.started) * 1000, 2),
            status=status,
            guardrails=self.guardrails,
            cache_write_tokens=usage.cache_write_tokens,
        )
        return self.record


_NODE = os.urandom(5).hex()
_SEQUENCE = itertools.count()


def new_id() -> str:
    """A request id: milliseconds since the epoch, this process's random node, a sequence
    number (32 hex digits). Unique across replicas and restarts without a system call per
    request, and time-ordered, so spend rows are appended to the primary-key index rather
    than scattered through it."""
    millis = time.time_ns() // 1_000_000
    return f"{millis:012x}{_NODE}{next(_SEQUENCE) & 0xFFFFFFFFFF:010x}"


def _delta(slot: Slot, tokens: int, cost: int, sent: bool) -> int:
    """What to add to a counter at settle: the actual minus the reserved."""
    if slot.kind == "tokens":
        return tokens - slot.charge.amount
    if slot.kind == "usd":
        return cost - slot.charge.amount
    if slot.kind == "in_flight":
        return -slot.charge.amount  # the request is no longer in flight
    return 0 if sent else -slot.charge.amount  # a request is given back only if none was sent
