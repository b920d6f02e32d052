"""Daily spend exports per team (issue 21, item 5): CSV and JSON Lines from a real gateway
process, one team's records only, spreadsheet formulas defused, scoped like the reports."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gateway.governance.exports import COLUMNS
from tests.governance import gateways
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess


@pytest.fixture
def gateway(
    upstream: FakeUpstream, tmp_path: Path, storage_url: str | None
) -> Iterator[GatewayProcess]:
    with gateways.running(tmp_path, gateways.config(upstream, storage_url=storage_url)) as process:
        yield process


def test_a_teams_daily_export_holds_its_records_as_csv_and_jsonl_and_nothing_of_other_teams(
    gateway: GatewayProcess,
) -> None:
    teams = [gateway.admin("POST", "/admin/teams", json={"name": n}).json() for n in ("a", "b")]
    keys = [gateway.create_key([gateways.MODEL], team_id=t["id"])["key"] for t in teams]
    formula = '=HYPERLINK("http://x")'
    for _ in range(3):
        answer = gateways.chat(gateway, keys[0])
        assert answer.status_code == 200
    headers = {"Authorization": f"Bearer {keys[0]}", "X-Sealgate-Project": formula}
    tagged = httpx.post(
        gateway.url + "/v1/chat/completions", json=gateways.BODY, headers=headers, timeout=30
    )
    assert tagged.status_code == 200
    assert gateways.chat(gateway, keys[1]).status_code == 200
    gateways.wait_for_requests(gateway, 5)
    day = datetime.now(UTC).date().isoformat()
    path = "/admin/exports/spend"
    params = {"day": day, "team_id": teams[0]["id"]}

    as_csv = gateway.admin("GET", path, params=params)
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert f"sealgate-spend-{day}-{teams[0]['id']}.csv" in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert len(rows) == 4
    assert {row["team_id"] for row in rows} == {teams[0]["id"]}
    assert sum(int(row["cost_nanos"]) for row in rows) == 4 * gateways.COST_NANOS
    assert [row["project"] for row in rows if row["project"]] == ["'" + formula]

    as_jsonl = gateway.admin("GET", path, params={**params, "format": "jsonl"})
    assert as_jsonl.status_code == 200
    records = [json.loads(line) for line in as_jsonl.text.splitlines()]
    assert [r["id"] for r in records] == [row["id"] for row in rows]
    assert [r["project"] for r in records if r["project"]] == [formula]  # as it is, in JSON
    assert all(r["prompt_tokens"] == 11 and r["completion_tokens"] == 7 for r in records)

    everything = gateway.admin("GET", path, params={"day": day, "format": "jsonl"})
    assert len(everything.text.splitlines()) == 5
    other_day = gateway.admin("GET", path, params={"day": "2020-01-01"})
    assert other_day.text.strip().splitlines() == [",".join(COLUMNS)]


def test_a_scoped_token_exports_only_its_own_team(gateway: GatewayProcess) -> None:
    teams = [gateway.admin("POST", "/admin/teams", json={"name": n}).json() for n in ("a", "b")]
    token = gateway.admin(
        "POST", "/admin/tokens", json={"role": "viewer", "team_id": teams[1]["id"], "name": "v"}
    ).json()["token"]
    viewer = gateways.As(gateway, token)
    day = datetime.now(UTC).date().isoformat()
    hidden = viewer("GET", "/admin/exports/spend", params={"day": day, "team_id": teams[0]["id"]})
    assert hidden.status_code == 404
    own = viewer("GET", "/admin/exports/spend", params={"day": day})
    assert own.status_code == 200
    assert f"-{teams[1]['id']}.csv" in own.headers["content-disposition"]
    bad = gateway.admin("GET", "/admin/exports/spend", params={"day": "yesterday"})
    assert bad.status_code == 400
