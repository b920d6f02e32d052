"""Key lifecycle on two replicas sharing PostgreSQL and Redis (issue 21, item 1): rotation with a
grace period that ends at one stored moment on every replica, changes in place (scope, metadata,
alias) at once on the replica that made them and within the key cache time on the other, block
and unblock without deleting, requests in flight per key and team, and per-user limits."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.governance import gateways
from tests.governance.conftest import REDIS_URL
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

CACHE_SECONDS = 1
OTHER = "other-gpt"


@pytest.fixture
def pair(
    upstream: FakeUpstream,
    tmp_path: Path,
    postgres_database: Callable[[], str],
    redis_prefix: str,
) -> Iterator[list[GatewayProcess]]:
    """Two replicas caching key rows for CACHE_SECONDS, serving MODEL and OTHER."""
    text = gateways.config(
        upstream,
        storage_url=postgres_database(),
        redis={"url": REDIS_URL, "prefix": redis_prefix},
        auth_cache_seconds=CACHE_SECONDS,
    )
    text = text.replace(
        "router:",
        f"  - model: {OTHER}\n    provider: openai_compatible\n"
        f"    base_url: {upstream.base_url}/v1\n    allow_private_network: true\nrouter:",
    )
    price = f"    {gateways.DEPLOYMENT}: "
    text = text.replace(
        price, f'    {OTHER}/openai_compatible: {{prices: {{input: "1", output: "1"}}}}\n' + price
    )
    with gateways.pair(tmp_path, text) as replicas:
        yield replicas


def status(gateway: GatewayProcess, key: str, model: str = gateways.MODEL) -> int:
    return gateways.chat(gateway, key, model=model).status_code


def until(check: Callable[[], bool], seconds: float) -> bool:
    """Whether ``check`` came true within ``seconds`` (polled)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_rotated_key_stops_at_the_stored_grace_end_on_both_replicas_and_the_new_one_works_at_once(
    pair: list[GatewayProcess],
) -> None:
    first, second = pair
    created = first.create_key([gateways.MODEL], key_alias="billing-batch")
    old = created["key"]
    assert [status(first, old), status(second, old)] == [200, 200]  # both have cached the row
    rotated = first.admin("POST", f"/admin/keys/{created['id']}/rotate", json={"grace_seconds": 3})
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    new = body["key"]
    assert new != old and body["id"] == created["id"] and body["key_alias"] == "billing-batch"
    assert rotated.headers["cache-control"] == "no-store"
    # The new key works at once on both: the replica that still caches the old row re-reads it.
    assert [status(first, new), status(second, new)] == [200, 200]
    grace_ends = datetime.fromisoformat(body["previous_key_expires_at"])

    # The old key, on both replicas in turn until each has refused it: every 200 was asked for
    # before the stored end of the grace, every 401 answered after it, and none came back.
    seen: dict[int, list[tuple[datetime, datetime, httpx.Response]]] = {0: [], 1: []}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for index, gateway in enumerate(pair):
            asked = datetime.now(UTC)
            response = gateways.chat(gateway, old)
            seen[index].append((asked, datetime.now(UTC), response))
        if all(len(s) > 1 and s[-1][2].status_code == 401 for s in seen.values()):
            break
        time.sleep(0.05)
    for calls in seen.values():
        statuses = [response.status_code for _, _, response in calls]
        assert statuses[0] == 200 and statuses[-1] == 401
        first_refusal = statuses.index(401)
        assert set(statuses[:first_refusal]) == {200}
        assert set(statuses[first_refusal:]) == {401}
        for asked, answered, response in calls:
            if response.status_code == 200:
                assert asked < grace_ends
            else:
                assert answered >= grace_ends
                assert response.json()["error"]["code"] == "key_rotated"
    assert [status(first, new), status(second, new)] == [200, 200]

    # Audited, and neither key reached the audit log or either replica's log.
    audit = first.admin("GET", "/admin/audit").json()["data"]
    rotations = [entry for entry in audit if entry["action"] == "key.rotate"]
    assert [entry["target"] for entry in rotations] == [f"key:{created['id']}"]
    searched = [str(audit), first.stderr(), second.stderr()]
    for key in (old, new):
        secret = key.rsplit("-", 1)[1]
        assert not any(secret in text for text in searched)


def test_a_rotation_whose_grace_is_shorter_than_the_key_cache_is_refused(
    pair: list[GatewayProcess],
) -> None:
    first, _ = pair
    created = first.create_key([gateways.MODEL])
    path = f"/admin/keys/{created['id']}/rotate"
    refused = first.admin("POST", path, json={"grace_seconds": 0.5})
    assert refused.status_code == 400
    assert "server.auth_cache_seconds" in refused.json()["error"]["message"]
    assert status(first, created["key"]) == 200  # nothing changed
    assert first.admin("DELETE", f"/admin/keys/{created['id']}").status_code == 200
    revoked = first.admin("POST", path, json={"grace_seconds": 5})
    assert revoked.status_code == 400 and revoked.json()["error"]["code"] == "key_revoked"


def test_a_scope_change_applies_at_once_where_it_was_made_and_within_the_cache_time_elsewhere(
    pair: list[GatewayProcess],
) -> None:
    first, second = pair
    created = first.create_key([gateways.MODEL, OTHER], metadata={"owner": "data-team"})
    key = created["key"]
    assert [status(first, key, OTHER), status(second, key, OTHER)] == [200, 200]
    changed = first.admin(
        "PATCH",
        f"/admin/keys/{created['id']}",
        json={"models": [gateways.MODEL], "metadata": {"owner": "risk-team"}},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["models"] == [gateways.MODEL]
    assert changed.json()["metadata"] == {"owner": "risk-team"}
    assert status(first, key, OTHER) == 403  # the replica that served the change: at once
    assert until(lambda: status(second, key, OTHER) == 403, CACHE_SECONDS + 2)
    assert [status(first, key), status(second, key)] == [200, 200]  # the model it kept
    assert second.admin("GET", f"/admin/keys/{created['id']}").json()["rpm_limit"] is None


def test_a_patch_changes_only_the_fields_it_names(pair: list[GatewayProcess]) -> None:
    first, _ = pair
    created = first.create_key([gateways.MODEL], rpm_limit=5, tpm_limit=500)
    path = f"/admin/keys/{created['id']}"
    assert first.admin("PATCH", path, json={"key_alias": "nightly"}).status_code == 200
    after = first.admin("GET", path).json()
    assert (after["key_alias"], after["rpm_limit"], after["tpm_limit"]) == ("nightly", 5, 500)
    cleared = first.admin("PATCH", path, json={"tpm_limit": None}).json()
    assert (cleared["rpm_limit"], cleared["tpm_limit"]) == (5, None)
    empty = first.admin("PATCH", path, json={})
    assert empty.status_code == 400 and "nothing to change" in empty.text
    refused = first.admin("PATCH", path, json={"models": None})
    assert refused.status_code == 400 and "models cannot be null" in refused.text
    unknown = first.admin("PATCH", path, json={"models": ["no-such-model"]})
    assert unknown.status_code == 404
    assert first.admin("GET", path).json()["models"] == [gateways.MODEL]


def test_a_key_alias_is_unique(pair: list[GatewayProcess]) -> None:
    first, second = pair
    first.create_key([gateways.MODEL], key_alias="etl")
    again = second.admin(
        "POST", "/admin/keys", json={"models": [gateways.MODEL], "key_alias": "etl"}
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "key_alias_taken"
    other = first.create_key([gateways.MODEL])
    taken = first.admin("PATCH", f"/admin/keys/{other['id']}", json={"key_alias": "etl"})
    assert taken.status_code == 409


def test_a_blocked_key_is_refused_on_both_replicas_until_unblocked(
    pair: list[GatewayProcess],
) -> None:
    first, second = pair
    created = first.create_key([gateways.MODEL])
    key, path = created["key"], f"/admin/keys/{created['id']}"
    assert [status(first, key), status(second, key)] == [200, 200]
    blocked = first.admin("POST", path + "/block")
    assert blocked.status_code == 200 and blocked.json()["blocked"] is True
    refused = gateways.chat(first, key)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "key_blocked"
    assert until(lambda: status(second, key) == 401, CACHE_SECONDS + 2)
    listed = first.admin("GET", "/admin/keys").json()["data"]
    assert [k["blocked"] for k in listed if k["id"] == created["id"]] == [True]  # kept
    assert first.admin("POST", path + "/unblock").json()["blocked"] is False
    assert status(first, key) == 200
    assert until(lambda: status(second, key) == 200, CACHE_SECONDS + 2)
    actions = [e["action"] for e in first.admin("GET", "/admin/audit").json()["data"]]
    assert "key.block" in actions and "key.unblock" in actions


def concurrently(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def test_max_parallel_requests_of_a_key_holds_across_replicas_and_frees_as_requests_finish(
    pair: list[GatewayProcess], upstream: FakeUpstream
) -> None:
    first, second = pair
    key = first.create_key([gateways.MODEL], max_parallel_requests=3)["key"]
    upstream.default.delay = 0.5
    calls = [(lambda g=pair[i % 2]: gateways.chat(g, key)) for i in range(24)]
    answers = concurrently(calls)
    statuses = [answer.status_code for answer in answers]
    assert 1 <= upstream.most_in_flight <= 3
    assert statuses.count(200) >= 3 and statuses.count(429) >= 1
    assert set(statuses) == {200, 429}
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert "3 requests in flight" in refused.json()["error"]["message"]
    assert refused.headers["retry-after"] == "1"
    # Every slot was given back: three at once fit again, on both replicas.
    upstream.default.delay = 0.2
    again = concurrently(
        [lambda: gateways.chat(first, key)] * 2 + [lambda: gateways.chat(second, key)]
    )
    assert [answer.status_code for answer in again] == [200, 200, 200]


def test_max_parallel_requests_of_a_team_holds_for_all_its_keys_together(
    pair: list[GatewayProcess], upstream: FakeUpstream
) -> None:
    first, _ = pair
    team = first.admin("POST", "/admin/teams", json={"name": "ops", "max_parallel_requests": 2})
    assert team.status_code == 201, team.text
    keys = [first.create_key([gateways.MODEL], team_id=team.json()["id"])["key"] for _ in range(3)]
    time.sleep(1)  # the other replica's snapshot holds the team (refresh_seconds 0.5)
    upstream.default.delay = 0.5
    calls = [(lambda g=pair[i % 2], k=keys[i % 3]: gateways.chat(g, k)) for i in range(18)]
    statuses = [answer.status_code for answer in concurrently(calls)]
    assert 1 <= upstream.most_in_flight <= 2
    assert statuses.count(429) >= 1 and statuses.count(200) >= 2


def test_a_users_rpm_limit_holds_across_all_its_keys_and_both_replicas(
    pair: list[GatewayProcess],
) -> None:
    first, _ = pair
    user = first.admin("POST", "/admin/users", json={"name": "ana", "rpm_limit": 4})
    assert user.status_code == 201, user.text
    user_id = user.json()["id"]
    keys = [first.create_key([gateways.MODEL], user_id=user_id)["key"] for _ in range(2)]
    time.sleep(1)  # the other replica's snapshot holds the user (refresh_seconds 0.5)
    gateways.wait_for_window()
    statuses = [status(pair[i % 2], keys[i % 2]) for i in range(10)]
    assert statuses.count(200) == 4 and statuses.count(429) == 6
    changed = first.admin("PATCH", f"/admin/users/{user_id}", json={"tpm_limit": 1000})
    assert changed.status_code == 200
    assert (changed.json()["rpm_limit"], changed.json()["tpm_limit"]) == (4, 1000)
