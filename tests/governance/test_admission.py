"""admit/settle against a real database (SQLite and PostgreSQL) and real counters (in process
and Redis), with an injectable clock: limits are atomic, budgets reserve then settle and reset
at the period boundary, 429s carry Retry-After and x-ratelimit-* headers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from gateway.errors import BudgetExceeded, RateLimited
from gateway.governance.admission import Admission
from gateway.governance.core import Governance
from gateway.governance.counters import Counters, MemoryCounters
from gateway.governance.pricing import nanos
from gateway.governance.redis_counters import RedisCounters
from gateway.governance.spend import Outbox
from gateway.serve import parse_config
from gateway.store.keys import KeyRecord, KeyStore
from gateway.values import Usage
from tests.governance.conftest import REDIS_URL
from tests.governance.estimate_corpus import requests
from tests.governance.openai_tokens import openai_count

pytestmark = pytest.mark.anyio

CONFIG = """
deployments:
  - model: m
    provider: mock
  - model: capped
    provider: mock
    id: capped-a
  - model: capped
    provider: mock
    id: capped-b
governance:
  default_max_tokens: 10
  deployments:
    m/mock: {prices: {input: "1000", output: "2000"}}
    capped-a: {rpm: 1}
    capped-b: {rpm: 1}
"""
CONFIGURED = parse_config(CONFIG, "test")
DEPLOYMENTS = {d.name: d for d in CONFIGURED.deployments}
M = DEPLOYMENTS["m/mock"]
BODY = {"messages": [{"role": "user", "content": "x" * 24}], "max_tokens": 5}  # 4+6+3 + 5 = 18


class Clock:
    def __init__(self, when: datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def counters_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 5, 23, 59, 0, 500000, tzinfo=UTC))


@pytest.fixture
async def governance(
    engine: Engine, tmp_path: Path, clock: Clock, counters_kind: str, redis_prefix: str
) -> AsyncIterator[Governance]:
    counters: Counters = (
        MemoryCounters(clock)
        if counters_kind == "memory"
        else RedisCounters(REDIS_URL, redis_prefix, 2.0)
    )
    outbox = Outbox(engine, tmp_path, 0.01, 0.05)
    outbox.start()
    gov = Governance(
        CONFIGURED.governance, CONFIGURED.deployments, engine, outbox, counters, clock=clock
    )
    gov.refresh()
    yield gov
    await gov.close()


def key(engine: Engine, **fields: object) -> KeyRecord:
    return KeyStore(engine).create(["*"], **fields)[1]  # type: ignore[arg-type]


async def drained(gov: Governance) -> None:
    if isinstance(gov.counters, RedisCounters):
        await gov.counters.drain()


async def test_concurrent_requests_never_get_more_tokens_through_than_the_tpm_limit(
    governance: Governance, engine: Engine
) -> None:
    # LiteLLM #18730: concurrent requests got 663 tokens through a 100-TPM limit.
    record = key(engine, tpm_limit=100)
    used = Usage(prompt_tokens=11, completion_tokens=5)  # at most the reservation of 18

    async def one() -> int:
        try:
            admission = await governance.admit(record, "m", BODY, {})
        except RateLimited:
            return 0
        await asyncio.sleep(0.01)
        admission.settle(used, M, "ok")
        return used.total_tokens

    through = await asyncio.gather(*(one() for _ in range(200)))
    assert 0 < sum(through) <= 100


async def test_issue_21_one_word_prompts_never_get_more_tokens_through_than_the_tpm_limit(
    governance: Governance, engine: Engine
) -> None:
    # Issue 21: "hello" was estimated at 5 tokens while OpenAI counts 8, so a 100-TPM key let 108
    # through when each upstream reported 12.
    record = key(engine, tpm_limit=100)
    body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
    used = Usage(prompt_tokens=openai_count(body), completion_tokens=4)
    assert used.total_tokens == 12

    async def one() -> int:
        try:
            admission = await governance.admit(record, "m", body, {})
        except RateLimited:
            return 0
        await asyncio.sleep(0.01)
        admission.settle(used, M, "ok")
        return used.total_tokens

    through = await asyncio.gather(*(one() for _ in range(20)))
    assert 0 < sum(through) <= 100


@pytest.mark.parametrize("limit", ["tpm", "budget"])
async def test_real_prompts_with_max_tokens_never_exceed_a_tpm_limit_or_a_budget(
    governance: Governance, engine: Engine, limit: str
) -> None:
    # Every request of the estimate corpus, three times at once, each upstream reporting
    # OpenAI's own count of the prompt and the whole max_tokens: the one limit set (TPM on the
    # key, or a budget on its team, $0.001 a token here) never overshoots.
    team = governance.tenancy.create_team("corpus", None, None, {})
    if limit == "budget":
        governance.tenancy.create_budget("team", team.id, "daily", nanos(Decimal("3")), None)
        governance.refresh()
    record = key(engine, tpm_limit=3000 if limit == "tpm" else None, team_id=team.id)
    bodies = [{**body, "max_tokens": 16} for _, body in requests()]
    costs: list[int] = []

    async def one(body: dict[str, object]) -> int:
        try:
            admission = await governance.admit(record, "m", body, {})
        except (RateLimited, BudgetExceeded):
            return 0
        await asyncio.sleep(0.01)
        used = Usage(prompt_tokens=openai_count(body), completion_tokens=16)
        spent = admission.settle(used, M, "ok")
        assert spent is not None
        costs.append(spent.cost_nanos)
        return used.total_tokens

    through = await asyncio.gather(*(one(body) for body in bodies * 3))
    await drained(governance)
    assert 0 < sum(through) < sum(openai_count(body) + 16 for body in bodies * 3)  # it bound
    if limit == "tpm":
        assert sum(through) <= 3000
    else:
        assert sum(costs) <= nanos(Decimal("3"))


async def test_requests_in_flight_never_exceed_max_parallel_even_across_a_window_boundary(
    governance: Governance, engine: Engine, clock: Clock
) -> None:
    record = key(engine, max_parallel_requests=3)

    async def one() -> Admission | None:
        try:
            return await governance.admit(record, "m", BODY, {})
        except RateLimited:
            return None

    held = [a for a in await asyncio.gather(*(one() for _ in range(20))) if a is not None]
    assert len(held) == 3
    clock.now += governance.settings.in_flight_seconds  # the next window: still in flight
    assert await one() is None
    held[0].settle(Usage(11, 5), M, "ok")
    again = await one()
    assert again is not None  # a finished request gave its place back
    assert await one() is None
    for admission in (*held[1:], again):
        admission.settle(Usage(11, 5), M, "ok")
    await drained(governance)
    assert len([a for a in await asyncio.gather(*(one() for _ in range(5))) if a]) == 3


async def test_a_team_budget_is_never_exceeded_by_concurrent_requests(
    governance: Governance, engine: Engine
) -> None:
    team = governance.tenancy.create_team("t", None, None, {})
    governance.tenancy.create_budget("team", team.id, "daily", nanos(Decimal("0.10")), None)
    governance.refresh()
    records = [key(engine, team_id=team.id) for _ in range(3)]  # three keys share the team
    used = Usage(prompt_tokens=11, completion_tokens=5)  # $0.021 actual, $0.023 reserved
    costs: list[int] = []

    async def one(i: int) -> None:
        try:
            admission = await governance.admit(records[i % 3], "m", BODY, {})
        except BudgetExceeded:
            return
        await asyncio.sleep(0.01)
        spent = admission.settle(used, M, "ok")
        assert spent is not None
        costs.append(spent.cost_nanos)

    await asyncio.gather(*(one(i) for i in range(50)))
    await drained(governance)
    assert sum(costs) <= nanos(Decimal("0.10"))
    assert len(costs) >= 4


async def test_a_budget_blocks_until_the_period_boundary_then_resets(
    governance: Governance, engine: Engine, clock: Clock
) -> None:
    record = key(engine)
    governance.tenancy.create_budget("key", record.id, "daily", nanos(Decimal("0.05")), None)
    governance.refresh()
    used = Usage(prompt_tokens=11, completion_tokens=5)
    for _ in range(2):
        (await governance.admit(record, "m", BODY, {})).settle(used, M, "ok")
    await drained(governance)
    with pytest.raises(BudgetExceeded) as refused:
        await governance.admit(record, "m", BODY, {})
    assert refused.value.headers["Retry-After"] == "60"  # 23:59:00.5 -> midnight UTC
    clock.now = datetime(2026, 3, 6, 0, 0, 1, tzinfo=UTC).timestamp()
    (await governance.admit(record, "m", BODY, {})).settle(used, M, "ok")


async def test_a_restarted_replica_seeds_budgets_from_the_spend_table(
    governance: Governance, engine: Engine, tmp_path: Path, clock: Clock
) -> None:
    record = key(engine)
    governance.tenancy.create_budget("key", record.id, "monthly", nanos(Decimal("0.05")), None)
    governance.refresh()
    used = Usage(prompt_tokens=11, completion_tokens=5)
    for _ in range(2):
        (await governance.admit(record, "m", BODY, {})).settle(used, M, "ok")
    assert governance.outbox.flush()
    restarted = Governance(
        CONFIGURED.governance,
        CONFIGURED.deployments,
        engine,
        governance.outbox,
        MemoryCounters(clock),
        clock=clock,
    )
    restarted.refresh()
    with pytest.raises(BudgetExceeded):  # $0.042 spent + $0.023 reserved > $0.05
        await restarted.admit(record, "m", BODY, {})


async def test_a_full_rpm_limit_answers_429_with_retry_after_and_ratelimit_headers(
    governance: Governance, engine: Engine
) -> None:
    record = key(engine, rpm_limit=2, tpm_limit=1000)
    for _ in range(2):
        await governance.admit(record, "m", BODY, {})
    with pytest.raises(RateLimited) as refused:
        await governance.admit(record, "m", BODY, {})
    headers = refused.value.headers
    assert refused.value.http_status == 429
    assert headers["Retry-After"] == "60"
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-limit-tokens"] == "1000"
    assert headers["x-ratelimit-remaining-tokens"] == str(1000 - 2 * 18)


async def test_a_full_deployment_is_skipped_and_a_request_that_was_never_sent_is_given_back(
    governance: Governance, engine: Engine
) -> None:
    record = key(engine, rpm_limit=10)
    a, b = DEPLOYMENTS["capped-a"], DEPLOYMENTS["capped-b"]
    first = await governance.admit(record, "capped", BODY, {})
    assert await first.gate(a) is None
    second = await governance.admit(record, "capped", BODY, {})
    assert isinstance(await second.gate(a), RateLimited)
    assert await second.gate(b) is None
    third = await governance.admit(record, "capped", BODY, {})
    assert isinstance(await third.gate(a), RateLimited)
    assert isinstance(await third.gate(b), RateLimited)
    third.fail(RateLimited("no deployment has room"))
    await drained(governance)
    for _ in range(8):  # 10 per minute: 2 used, the third given back
        await governance.admit(record, "m", BODY, {})
    with pytest.raises(RateLimited):
        await governance.admit(record, "m", BODY, {})


async def test_a_stream_without_usage_is_charged_its_counted_tokens(
    governance: Governance, engine: Engine
) -> None:
    admission = await governance.admit(key(engine), "m", BODY, {})
    spent = admission.settle(None, M, "ok", counted_completion=7)
    assert spent is not None
    assert (spent.prompt_tokens, spent.completion_tokens) == (13, 7)
    assert spent.cost_nanos == 13 * 1_000_000 + 7 * 2_000_000


async def test_a_failed_call_is_recorded_and_charges_nothing(
    governance: Governance, engine: Engine
) -> None:
    record = key(engine, tpm_limit=18)
    admission = await governance.admit(record, "m", BODY, {})
    await admission.gate(M)
    admission.fail(RateLimited("upstream said no"))
    await drained(governance)
    again = await governance.admit(record, "m", BODY, {})  # the 18 tokens came back
    assert again.slots


async def test_the_soft_threshold_warns_once_per_period(
    governance: Governance, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    record = key(engine)
    governance.tenancy.create_budget(
        "key", record.id, "weekly", nanos(Decimal("1")), nanos(Decimal("0.03"))
    )
    governance.refresh()
    caplog.set_level(logging.WARNING, "sealgate.governance")
    for _ in range(4):
        (await governance.admit(record, "m", BODY, {})).settle(Usage(11, 5), M, "ok")
        await drained(governance)
        await governance.alerts.drain()  # what the alert worker does once started
    warnings = [r for r in caplog.records if r.message == "budget soft threshold reached"]
    assert len(warnings) == 1
    assert [a["kind"] for a in governance.alerts.list()] == ["soft"]


class CountingReserve:
    """Counts calls to the real counters' reserve (they still run, in memory or in Redis)."""

    def __init__(self, gov: Governance) -> None:
        self.calls = 0
        self._real = gov.counters.reserve
        gov.counters.reserve = self  # type: ignore[method-assign]

    async def __call__(self, charges: object) -> object:
        self.calls += 1
        return await self._real(charges)  # type: ignore[arg-type]


async def test_the_first_deployment_is_reserved_with_the_request_in_one_step(
    governance: Governance, engine: Engine
) -> None:
    record = key(engine, rpm_limit=10)
    a = DEPLOYMENTS["capped-a"]
    spy = CountingReserve(governance)
    admission = await governance.admit(record, "capped", BODY, {}, first=a)
    assert await admission.gate(a) is None
    assert spy.calls == 1  # the gate took what admission reserved for it
    other = await governance.admit(record, "capped", BODY, {})
    assert isinstance(await other.gate(a), RateLimited)  # capped-a's 1 per minute is used


async def test_a_full_first_deployment_still_admits_the_request_and_is_skipped(
    governance: Governance, engine: Engine
) -> None:
    record = key(engine, rpm_limit=10)
    a, b = DEPLOYMENTS["capped-a"], DEPLOYMENTS["capped-b"]
    assert await (await governance.admit(record, "capped", BODY, {})).gate(a) is None
    admission = await governance.admit(record, "capped", BODY, {}, first=a)
    skipped = await admission.gate(a)
    assert isinstance(skipped, RateLimited) and "capped-a" in skipped.message
    assert await admission.gate(b) is None
    admission.settle(Usage(11, 5), b, "ok")
    await drained(governance)
    for _ in range(8):  # 10 per minute for the key: exactly 2 used, the refusal took none
        await governance.admit(record, "m", BODY, {})
    with pytest.raises(RateLimited):
        await governance.admit(record, "m", BODY, {})


async def test_a_first_deployment_never_tried_gets_its_reservation_back(
    governance: Governance, engine: Engine
) -> None:
    record = key(engine)
    a = DEPLOYMENTS["capped-a"]
    abandoned = await governance.admit(record, "capped", BODY, {}, first=a)
    abandoned.fail(RateLimited("the client went away before routing"))
    await drained(governance)
    admission = await governance.admit(record, "capped", BODY, {})
    assert await admission.gate(a) is None  # capped-a's one request a minute is free again
