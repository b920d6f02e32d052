"""Reconcile the budgets' running counters (Redis) with the spend table (``sealgate governance
reconcile``).

Each budget's counter for its current period should hold the period's spend plus what requests
in flight have reserved: ``ok`` when it equals the spend table, ``over`` when above it (requests in
flight, or settles not yet applied: the safe side, it refuses a little early), ``under`` when below
it (the counter would let more through than the budget allows: the command exits 1), ``absent``
when no replica has charged it this period (the first one seeds it from the spend table).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Engine

from gateway.governance import periods
from gateway.governance.pricing import usd
from gateway.governance.snapshot import spent_since
from gateway.governance.tenancy import Tenancy

Status = Literal["ok", "over", "under", "absent"]


@dataclass(frozen=True, slots=True)
class Line:
    budget_id: str
    scope: str
    scope_id: str
    period: str
    period_label: str
    counter_nanos: int | None
    spent_nanos: int

    @property
    def status(self) -> Status:
        if self.counter_nanos is None:
            return "absent"
        if self.counter_nanos == self.spent_nanos:
            return "ok"
        return "over" if self.counter_nanos > self.spent_nanos else "under"

    def public(self) -> dict[str, Any]:
        counter = self.counter_nanos
        return {
            "budget_id": self.budget_id,
            "scope": self.scope,
            "scope_id": self.scope_id,
            "period": self.period_label,
            "counter_usd": usd(counter) if counter is not None else None,
            "spent_usd": usd(self.spent_nanos),
            "status": self.status,
        }


def counter_key(budget_id: str, label: str) -> str:
    """The budget's counter in the current period, as ``Governance.admit`` names it."""
    return f"u:{budget_id}:{label}"


def reconcile(
    engine: Engine,
    read: Callable[[Sequence[str]], Sequence[int | None]],
    now: datetime,
) -> list[Line]:
    """One line per budget; ``read`` gives the counters' values for their keys (None: absent)."""
    found = []
    for budget in Tenancy(engine).budgets():
        start, _ = periods.window(budget.period, now)
        label = periods.label(budget.period, start)
        spent = spent_since(engine, budget.scope, [budget.scope_id], start).get(budget.scope_id, 0)
        found.append((budget, label, spent))
    values = read([counter_key(budget.id, label) for budget, label, _ in found]) if found else []
    return [
        Line(b.id, b.scope, b.scope_id, b.period, label, value, spent)
        for (b, label, spent), value in zip(found, values, strict=True)
    ]


def render(lines: list[Line]) -> str:
    rows = ["budget_id scope scope_id period counter_usd spent_usd status"]
    for line in lines:
        view = line.public()
        rows.append(" ".join(str(view[k]) for k in view))
    return "\n".join(rows)
