"""The spend record of a request the gateway refused before any upstream saw it (a guardrail
block at the request stage): no tokens, no cost, no deployment, the refusal as its status and
the guardrails' evidence (detector names and counts), so spend reports and exports show blocks
beside the calls that went through. Nothing was reserved for such a request, so nothing is
given back."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.governance.admission import new_id
from gateway.governance.core import Governance, attribution
from gateway.governance.spend import SpendRecord
from gateway.store.keys import KeyRecord


async def record_refusal(
    governance: Governance,
    record: KeyRecord,
    model: str,
    headers: Mapping[bytes, bytes],
    status: str,
    guardrails: str,
    latency_ms: float,
) -> SpendRecord:
    """Write the record (durable before the refusal is answered, as an answered request's is,
    unless ``outbox.durable_answers`` is off) and return it."""
    project, tags = attribution(record.metadata, headers, governance.settings.project_header)
    spent = SpendRecord(
        id=new_id(),
        at=governance.clock(),
        key_id=record.id,
        team_id=record.team_id,
        user_id=record.user_id,
        project=project,
        tags=tags,
        model=model,
        deployment=None,
        prompt_tokens=0,
        completion_tokens=0,
        cached_tokens=0,
        cost_nanos=0,
        latency_ms=round(latency_ms, 2),
        status=status,
        guardrails=guardrails,
    )
    if governance.settings.outbox.durable_answers:
        await governance.outbox.write(spent)
    else:
        governance.outbox.put(spent)
    return spent
