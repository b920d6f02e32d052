"""Governance on the hot path: ``admit`` before routing, ``Admission.settle`` after the answer.

``admit`` finds what applies to the caller (its key's, team's and user's request and token
limits per minute, its key's and team's requests in flight, and the budgets of its key, team
and user), estimates the request's tokens and cost, and
reserves all of it in one atomic step; a full counter refuses the request with a 429 that carries
``Retry-After`` and ``x-ratelimit-*`` headers. Nothing here touches the database per request:
limits come from the cached key record and an in-memory snapshot refreshed in the background,
counters are in memory or one Redis round trip away, spend goes to the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import anyio.to_thread
from sqlalchemy import Engine

from gateway.config import Deployment
from gateway.config.governance import Governance as GovernanceSettings
from gateway.errors import GatewayError, LimitsUnavailable, PermissionDenied
from gateway.governance import estimate, periods, snapshot
from gateway.governance.admission import WINDOW_SECONDS, Admission, Slot, new_id, refusal
from gateway.governance.alerts import Alerts, AlertSink, BudgetAlert
from gateway.governance.counters import Charge, Counters, CountersUnavailable, Outcome
from gateway.governance.pricing import FREE, Price, PriceTable, deployment_prices
from gateway.governance.snapshot import Snapshot
from gateway.governance.spend import Outbox
from gateway.governance.tenancy import Tenancy
from gateway.metrics import METRICS
from gateway.store.keys import KeyRecord
from gateway.values import Usage

log = logging.getLogger("sealgate.governance")

MINUTE_TTL = 2 * WINDOW_SECONDS
DAY = 86400
TOTAL_TTL = 400 * DAY
MAX_PROJECT = 128
MAX_TAGS = 16
MAX_TAG = 64
Kind = Literal["chat", "embeddings"]
SOFT_ALERTS = METRICS.counter(
    "sealgate_budget_soft_alerts_total", "budgets that reached their soft threshold in a period"
)


def attribution(
    metadata: Mapping[str, Any], headers: Mapping[bytes, bytes], from_header: bool
) -> tuple[str | None, tuple[str, ...]]:
    """Project and tags: the key's metadata (``project``, ``tags``) first; the request headers
    ``x-sealgate-project`` and ``x-sealgate-tags`` (comma-separated) add to it when allowed."""
    project = metadata.get("project")
    raw = metadata.get("tags")
    if project is None and raw is None:  # issue 16: the common case, without the set and sort
        headed = b"x-sealgate-project" in headers or b"x-sealgate-tags" in headers
        if not (from_header and headed):
            return None, ()
    project = str(project)[:MAX_PROJECT] if project not in (None, "") else None
    tags = [str(t) for t in raw] if isinstance(raw, list) else []
    if isinstance(raw, str):
        tags = raw.split(",")
    if from_header:
        if project is None and b"x-sealgate-project" in headers:
            project = headers[b"x-sealgate-project"].decode("latin-1").strip()[:MAX_PROJECT]
        if b"x-sealgate-tags" in headers:
            tags += headers[b"x-sealgate-tags"].decode("latin-1").split(",")
    cleaned = sorted({t.strip()[:MAX_TAG] for t in tags if t.strip()})[:MAX_TAGS]
    return project or None, tuple(cleaned)


def allowed_values(metadata: Mapping[str, Any], name: str) -> frozenset[str] | None:
    """The ``allowed_projects`` / ``allowed_tags`` a key's or team's metadata names (a list, or
    a comma-separated string), or None when it names none (anything goes)."""
    raw = metadata.get(name)
    if raw is None:
        return None
    values = raw.split(",") if isinstance(raw, str) else [str(v) for v in raw]
    return frozenset(v.strip() for v in values if v.strip())


def check_allowed(
    project: str | None, tags: tuple[str, ...], *owners: tuple[str, Mapping[str, Any]]
) -> None:
    """PermissionDenied when the request is attributed to a project or a tag outside a set its
    key or its team allows, so that a client cannot put its spend on another team's project."""
    for owner, metadata in owners:
        projects = allowed_values(metadata, "allowed_projects")
        if project is not None and projects is not None and project not in projects:
            raise PermissionDenied(
                f"project {project!r} is not allowed for this {owner}; allowed: "
                f"{', '.join(sorted(projects)) or 'none'}",
                param="x-sealgate-project",
                code="project_not_allowed",
            )
        allowed = allowed_values(metadata, "allowed_tags")
        outside = sorted(set(tags) - allowed) if allowed is not None else []
        if outside:
            raise PermissionDenied(
                f"tag(s) {', '.join(outside)} not allowed for this {owner}; allowed: "
                f"{', '.join(sorted(allowed or ())) or 'none'}",
                param="x-sealgate-tags",
                code="tag_not_allowed",
            )


def _tail(outcome: Outcome, start: int) -> Outcome:
    """The part of a refused outcome that covers the slots from ``start`` on."""
    assert outcome.refused is not None
    return Outcome(outcome.refused - start, outcome.values[start:], outcome.local)


def _max_price(prices: list[Price]) -> Price:
    if not prices:
        return FREE
    return Price.of(
        max(p.input for p in prices),
        max(p.cached_input for p in prices),
        max(p.output for p in prices),
        max(p.input if p.cache_write is None else p.cache_write for p in prices),
    )


class Governance:
    def __init__(
        self,
        settings: GovernanceSettings,
        deployments: list[Deployment],
        engine: Engine,
        outbox: Outbox,
        counters: Counters,
        prices: PriceTable | None = None,
        clock: Callable[[], float] = time.time,
        alert_sink: AlertSink | None = None,
    ) -> None:
        self.engine = engine
        self.alerts = Alerts(engine, alert_sink, settings.alert_retry_seconds)
        self.tenancy = Tenancy(engine)
        self.outbox = outbox
        self.counters = counters
        self.clock = clock
        self.snapshot = Snapshot()
        self._table = prices or PriceTable.bundled()
        self.configure(settings, deployments)
        self._periods: dict[tuple[str, int], tuple[str, float]] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._stale = False

    def configure(self, settings: GovernanceSettings, deployments: list[Deployment]) -> None:
        """Take the deployments' prices and limits (at start-up, and again on a reload: an
        admission already made settles at the prices in force when it settles). A deployment
        without a price is a ConfigError (``pricing.deployment_prices``): never silently free."""
        prices = deployment_prices(deployments, settings, self._table)
        groups: dict[str, list[Price]] = {}
        for deployment in deployments:
            groups.setdefault(deployment.model, []).append(prices[deployment.name])
        limited: dict[str, tuple[str, int | None, int | None]] = {}
        for name, limits in settings.deployments.items():
            if limits.rpm is not None or limits.tpm is not None:
                limited[name] = (name, limits.rpm, limits.tpm)
        # Each attribute is replaced whole, so a request reads either the old or the new one.
        self.settings = settings
        self._prices = prices
        self._model_price = {m: _max_price(p) for m, p in groups.items()}
        self._limited = limited

    # -- lifecycle --------------------------------------------------------------------------
    def refresh(self) -> None:
        """Reload teams, budgets and period spend (sync; raises when the database fails)."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        self.snapshot = snapshot.load(self.engine, self.tenancy, now)
        snapshot.LATEST.snapshot = self.snapshot  # for the budget gauge, read at scrape

    async def start(self) -> None:
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())
        self.alerts.start()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.refresh_seconds)
            try:
                await anyio.to_thread.run_sync(self.refresh)
            except Exception as exc:  # noqa: BLE001 - keep the last snapshot, say so once
                if not self._stale:
                    log.warning(
                        "governance data could not be reloaded; using the last snapshot",
                        extra={"sg_error": type(exc).__name__},
                    )
                self._stale = True
            else:
                self._stale = False

    async def health(self) -> dict[str, object]:
        """The readiness checks of the counters and the spend outbox."""
        return {"counters": await self.counters.health(), "spend_outbox": self.outbox.health()}

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        await self.alerts.stop()
        await self.counters.close()
        await anyio.to_thread.run_sync(self.outbox.stop)

    # -- the hot path -----------------------------------------------------------------------
    async def admit(
        self,
        record: KeyRecord,
        model: str,
        body: dict[str, Any],
        headers: Mapping[bytes, bytes],
        kind: Kind = "chat",
        first: Deployment | None = None,
    ) -> Admission:
        """Reserve the request's counters, or raise the 429 that says which one is full.
        ``first`` is the deployment the router will try first: its own limits are reserved in
        the same step, so a routed request costs one counter round trip, not two."""
        now = self.clock()
        # The token and cost estimates, made when a counter needs them (a token limit, a budget,
        # the first deployment's limits, a call the router makes): a cache hit on a key without
        # token limits or budgets never does (issue 16).
        price = self._model_price.get(model, FREE)
        if kind == "chat":
            default_max = self.settings.default_max_tokens

            def guessing() -> estimate.Estimate:
                return estimate.chat(body, default_max)
        else:

            def guessing() -> estimate.Estimate:
                return estimate.embeddings(body)

        made: list[estimate.Estimate] = []

        def guessed() -> estimate.Estimate:
            if not made:
                made.append(guessing())
            return made[0]

        def costed() -> int:
            guess = guessed()
            return price.cost(Usage(guess.prompt_tokens, guess.completion_tokens))

        snap = self.snapshot
        team = snap.teams.get(record.team_id) if record.team_id else None
        project, tags = attribution(record.metadata, headers, self.settings.project_header)
        if project is not None or tags:  # nothing to check a request attributed to nothing by
            owners_metadata = [("key", record.metadata)]
            if team is not None:
                owners_metadata.append(("team", team.metadata))
            check_allowed(project, tags, *owners_metadata)
        minute = int(now // WINDOW_SECONDS)
        reset = (minute + 1) * WINDOW_SECONDS
        slots: list[Slot] = []
        limits = [("key", f"k:{record.id}", record.rpm_limit, record.tpm_limit)]
        parallel = [("key", f"k:{record.id}", record.max_parallel_requests)]
        if team is not None:
            limits.append(("team", f"t:{team.id}", team.rpm_limit, team.tpm_limit))
            parallel.append(("team", f"t:{team.id}", team.max_parallel_requests))
        user = snap.users.get(record.user_id) if record.user_id else None
        if user is not None:
            limits.append(("user", f"u:{user.id}", user.rpm_limit, user.tpm_limit))
        if project is not None and (found := self._scope_limits(snap, "project", project)):
            limits.append(("project", f"j:{project}", *found))
        for tag in tags:
            if found := self._scope_limits(snap, "tag", tag):
                limits.append(("tag", f"g:{tag}", *found))
        slots += self._in_flight_slots(parallel, now)
        for scope, name, rpm, tpm in limits:
            if rpm is not None:
                charge = Charge(f"r:{name}:{minute}", 1, rpm, MINUTE_TTL)
                slots.append(Slot(charge, "requests", scope, reset))
            if tpm is not None:
                charge = Charge(f"t:{name}:{minute}", guessed().total, tpm, MINUTE_TTL)
                slots.append(Slot(charge, "tokens", scope, reset))
        owners = [("key", record.id), ("team", record.team_id), ("user", record.user_id)]
        owners += [("project", project), *(("tag", tag) for tag in tags)]
        for scope, scope_id in owners:
            for budget in snap.budgets_for(scope, scope_id):
                label, end = self._period(budget.period, now, minute)
                ttl = TOTAL_TTL if budget.period == "total" else int(end - now) + DAY
                seed = snap.seeds.get((budget.id, label), 0)
                charge = Charge(f"u:{budget.id}:{label}", costed(), budget.max_nanos, ttl, seed)
                slots.append(Slot(charge, "usd", f"budget:{budget.period} {scope}", end))
        ahead = self.deployment_slots(first, guessed(), now) if first is not None else []
        ahead_of: tuple[str, list[Slot], GatewayError | None] | None = None
        outcome = await self._reserve(slots, ahead)
        if outcome is not None and not outcome.ok and outcome.refused is not None:
            if outcome.refused < len(slots):
                self._check_hard(slots, outcome, now)
                raise refusal(slots, outcome, now, "key")
            # Only the first deployment is full: reserve the request alone; the router then
            # finds that deployment full (gate) and moves on to the next.
            assert first is not None
            full = refusal(ahead, _tail(outcome, len(slots)), now, "deployment")
            outcome = await self._reserve(slots, [])
            if outcome is not None and not outcome.ok:
                self._check_hard(slots, outcome, now)
                raise refusal(slots, outcome, now, "key")
            ahead_of = (first.name, ahead, full)
        elif first is not None:
            ahead_of = (first.name, ahead, None)
        if outcome is not None and slots:
            self._check_soft(slots, outcome.values[: len(slots)], now)
        return Admission(
            governance=self,
            request_id=new_id(),
            started=time.perf_counter(),
            key_id=record.id,
            team_id=record.team_id,
            user_id=record.user_id,
            project=project,
            tags=tags,
            model=model,
            guess=guessed,
            slots=slots,
            local=outcome.local if outcome is not None else False,
            ahead=ahead_of,
        )

    def _scope_limits(
        self, snap: Snapshot, scope: str, name: str
    ) -> tuple[int | None, int | None] | None:
        """A project's or tag's (rpm, tpm): the admin API's, which override the config's."""
        found = snap.scope_limits.get((scope, name))
        if found is not None:
            return found
        configured = (self.settings.projects if scope == "project" else self.settings.tags).get(
            name
        )
        return (configured.rpm, configured.tpm) if configured is not None else None

    def _in_flight_slots(self, limits: list[tuple[str, str, int | None]], now: float) -> list[Slot]:
        """Requests in flight, counted in windows of ``in_flight_seconds``: a request charges the
        window it starts in and the next one, and gives both back when it settles. A request
        that started two windows ago has settled (it lives at most one window), so the current
        window's counter holds every request still in flight; a request that was never settled
        (its replica died) stops counting when the next window ends."""
        length = self.settings.in_flight_seconds
        window = int(now // length)
        ttl = int(2 * length) + 60
        slots = []
        for scope, name, limit in limits:
            if limit is None:
                continue
            for nth in (window, window + 1):
                charge = Charge(f"p:{name}:{nth}", 1, limit, ttl)
                slots.append(Slot(charge, "in_flight", scope, now + 1))
        return slots

    async def _reserve(self, slots: list[Slot], ahead: list[Slot]) -> Outcome | None:
        """One atomic reservation of the request's slots and the first deployment's."""
        if not slots and not ahead:
            return None
        try:
            return await self.counters.reserve([s.charge for s in slots + ahead])
        except CountersUnavailable:
            raise self.counters_down() from None

    def _period(self, period: periods.Period, now: float, minute: int) -> tuple[str, float]:
        """The label and end (unix time) of the budget period containing ``now``, worked out
        once a minute (periods start on whole minutes)."""
        found = self._periods.get((period, minute))
        if found is None:
            if len(self._periods) > 64:
                self._periods.clear()
            start, end = periods.window(period, datetime.fromtimestamp(now, UTC))
            found = self._periods[(period, minute)] = (
                periods.label(period, start),
                end.timestamp(),
            )
        return found

    def deployment_slots(
        self, deployment: Deployment, guess: estimate.Estimate, now: float
    ) -> list[Slot]:
        known = self._limited.get(deployment.name)
        if known is None:
            return []
        label, rpm, tpm = known
        minute = int(now // WINDOW_SECONDS)
        reset = (minute + 1) * WINDOW_SECONDS
        name = f"d:{label}:{minute}"
        scope = "deployment " + label
        slots = []
        if rpm is not None:
            slots.append(Slot(Charge("r:" + name, 1, rpm, MINUTE_TTL), "requests", scope, reset))
        if tpm is not None:
            charge = Charge("t:" + name, guess.total, tpm, MINUTE_TTL)
            slots.append(Slot(charge, "tokens", scope, reset))
        return slots

    def cost(self, deployment: Deployment, usage: Usage) -> int:
        return self._prices.get(deployment.name, FREE).cost(usage)

    def counters_down(self) -> GatewayError:
        return LimitsUnavailable(
            "rate limits and budgets cannot be checked right now; retry shortly",
            headers={"Retry-After": "1"},
        )

    def _check_soft(self, slots: list[Slot], values: tuple[int, ...], now: float) -> None:
        """An alert for each budget this request took to its soft threshold (alerts.py sends
        it once per budget and period across all replicas)."""
        for slot, value in zip(slots, values, strict=True):
            if slot.kind != "usd":
                continue
            budget_id, label = slot.charge.key.split(":")[1:3]
            budget = self._budget(budget_id)
            if budget is None or budget.soft_nanos is None or value < budget.soft_nanos:
                continue
            alert = BudgetAlert(
                budget_id,
                budget.scope,
                budget.scope_id,
                budget.period,
                label,
                "soft",
                budget.soft_nanos,
                value,
                datetime.fromtimestamp(now, UTC),
            )
            if self.alerts.raised(alert):
                SOFT_ALERTS[(("scope", budget.scope), ("period", budget.period))] += 1

    def _check_hard(self, slots: list[Slot], outcome: Outcome, now: float) -> None:
        """An alert when the slot that refused the request is a budget: its hard limit."""
        assert outcome.refused is not None
        slot = slots[outcome.refused]
        if slot.kind != "usd":
            return
        budget_id, label = slot.charge.key.split(":")[1:3]
        budget = self._budget(budget_id)
        if budget is None:
            return
        alert = BudgetAlert(
            budget_id,
            budget.scope,
            budget.scope_id,
            budget.period,
            label,
            "hard",
            budget.max_nanos,
            outcome.values[outcome.refused],
            datetime.fromtimestamp(now, UTC),
        )
        self.alerts.raised(alert)

    def _budget(self, budget_id: str) -> Any:
        for group in self.snapshot.budgets.values():
            for budget in group:
                if budget.id == budget_id:
                    return budget
        return None
