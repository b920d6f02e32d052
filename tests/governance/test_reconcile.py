"""``sealgate governance reconcile`` (issue 21, item 5): each budget's counter in Redis against the
spend table in PostgreSQL, with the real command, after real admissions."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
import redis

from gateway import cli
from gateway.governance.core import Governance
from gateway.governance.pricing import nanos
from gateway.governance.redis_counters import RedisCounters
from gateway.governance.spend import Outbox
from gateway.store.db import make_engine, migrate
from gateway.store.keys import KeyStore
from gateway.values import Usage
from tests.governance import gateways
from tests.governance.conftest import REDIS_URL
from tests.governance.test_admission import BODY, CONFIGURED, M
from tests.support.fake_upstream import FakeUpstream

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.mark.anyio
async def test_reconcile_finds_counters_equal_to_the_spend_table_and_flags_one_below_it(
    upstream: FakeUpstream,
    tmp_path: Path,
    postgres_database: Callable[[], str],
    redis_prefix: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = postgres_database()
    engine = make_engine(url)
    migrate(engine)
    outbox = Outbox(engine, tmp_path, 0.01, 0.05)
    outbox.start()
    counters = RedisCounters(REDIS_URL, redis_prefix, 2.0)
    gov = Governance(CONFIGURED.governance, CONFIGURED.deployments, engine, outbox, counters)
    team = gov.tenancy.create_team("t", None, None, {})
    budget = gov.tenancy.create_budget("team", team.id, "monthly", nanos(Decimal("5")), None)
    gov.tenancy.create_budget("team", team.id, "daily", nanos(Decimal("5")), None)
    gov.refresh()
    record = KeyStore(engine).create(["*"], team_id=team.id)[1]
    for _ in range(4):
        (await gov.admit(record, "m", BODY, {})).settle(Usage(11, 5), M, "ok")
    await counters.drain()
    assert outbox.flush()
    config = tmp_path / "config.yaml"
    config.write_text(
        gateways.config(upstream, storage_url=url, redis={"url": REDIS_URL, "prefix": redis_prefix})
    )
    command = ["governance", "reconcile", "--config", str(config), "--json"]

    assert cli.main(command) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    statuses = {line["budget_id"]: line for line in lines}
    assert statuses[budget.id]["status"] == "ok"
    assert statuses[budget.id]["spent_usd"] == "0.084000000"  # 4 x (11 x 0.001 + 5 x 0.002)
    assert sorted(line["status"] for line in lines) == ["ok", "ok"]  # both charged, both equal

    client = redis.Redis.from_url(REDIS_URL)
    monthly = client.keys(f"{{{redis_prefix}}}:u:{budget.id}:*")
    assert len(monthly) == 1
    client.decrby(monthly[0], 1000)  # a charge the counter lost
    client.close()
    assert cli.main(command) == 1
    captured = capsys.readouterr()
    assert {json.loads(line)["status"] for line in captured.out.splitlines()} == {"ok", "under"}
    assert "1 below the spend table" in captured.err
    await gov.close()
    engine.dispose()


def test_reconcile_refuses_counters_that_live_in_process_memory(
    upstream: FakeUpstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(gateways.config(upstream))
    assert cli.main(["governance", "reconcile", "--config", str(config)]) == 2
    assert "no shared counter to compare" in capsys.readouterr().err
