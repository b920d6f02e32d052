"""The broker's short memory: TTL, stale window, refresh ahead, single flight, invalidation.

Most tests here use a scripted resolver: the behaviour under test is the broker's own timing
logic, which needs a hand-moved clock and failures on cue that a real server cannot give on
demand. The burst test at the end uses the real OpenBao and counts reads in its audit log.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gateway.errors import SecretUnavailable
from gateway.logs import Redactor
from gateway.refs import CredentialRef, parse_ref
from gateway.secrets.broker import UNAVAILABLE_MESSAGE, SecretBroker
from gateway.secrets.errors import BackendUnavailable, SecretMissing
from gateway.secrets.secret import Secret
from tests.secrets.vaultlab import VaultLab, run

REF = parse_ref("vault:kv/llm/openai#api_key")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Scripted:
    """A resolver double: answers with the next value or failure, and counts fetches."""

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.fetches = 0
        self.gate: asyncio.Event | None = None

    async def fetch(self, ref: CredentialRef) -> Secret:
        self.fetches += 1
        if self.gate is not None:
            await self.gate.wait()
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return Secret(answer)

    async def health(self) -> dict[str, object]:
        return {"ok": True}

    async def close(self) -> None:
        return None


def broker(resolver: Scripted, clock: Clock, **options: float) -> SecretBroker:
    return SecretBroker({"vault": resolver}, clock=clock, redactor=Redactor(), **options)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_warm_key_is_served_from_memory_without_a_fetch() -> None:
    resolver, clock = Scripted("sk-one"), Clock()
    b = broker(resolver, clock, ttl=60)

    async def scenario() -> None:
        for _ in range(10):
            assert (await b.get(REF)).reveal() == "sk-one"
        await b.close()

    run(scenario())
    assert resolver.fetches == 1


def test_a_burst_on_a_cold_cache_makes_one_fetch() -> None:
    resolver, clock = Scripted("sk-one"), Clock()
    b = broker(resolver, clock)

    async def scenario() -> list[str]:
        resolver.gate = asyncio.Event()
        waiters = [asyncio.ensure_future(b.get(REF)) for _ in range(100)]
        await settle()
        resolver.gate.set()
        values = [s.reveal() for s in await asyncio.gather(*waiters)]
        await b.close()
        return values

    assert run(scenario()) == ["sk-one"] * 100
    assert resolver.fetches == 1


def test_near_expiry_a_request_is_served_at_once_and_a_refresh_runs_behind_it() -> None:
    resolver, clock = Scripted("sk-old", "sk-new"), Clock()
    b = broker(resolver, clock, ttl=100)

    async def scenario() -> list[str]:
        seen = [(await b.get(REF)).reveal()]
        clock.now += 85  # inside the last fifth of the TTL
        seen.append((await b.get(REF)).reveal())
        await settle()
        seen.append((await b.get(REF)).reveal())
        await b.close()
        return seen

    assert run(scenario()) == ["sk-old", "sk-old", "sk-new"]
    assert resolver.fetches == 2


def test_backend_down_past_the_ttl_fails_closed_with_a_message_naming_no_path() -> None:
    resolver, clock = Scripted("sk-one", BackendUnavailable("kv/llm/openai: down")), Clock()
    b = broker(resolver, clock, ttl=60)

    async def scenario() -> SecretUnavailable:
        await b.get(REF)
        clock.now += 61
        try:
            await b.get(REF)
        except SecretUnavailable as exc:
            return exc
        finally:
            await b.close()
        raise AssertionError("expected SecretUnavailable")

    error = run(scenario())
    assert error.http_status == 503
    assert error.message == UNAVAILABLE_MESSAGE
    assert "llm" not in str(error.body())
    assert "sk-one" not in str(error.body())


def test_the_stale_window_serves_an_expired_key_while_the_backend_is_down_then_fails() -> None:
    resolver, clock = Scripted("sk-one", BackendUnavailable("down")), Clock()
    b = broker(resolver, clock, ttl=60, stale=30)

    async def scenario() -> list[str]:
        seen = [(await b.get(REF)).reveal()]
        clock.now += 80  # past the TTL, inside the stale window
        seen.append((await b.get(REF)).reveal())
        await settle()  # the background refresh fails
        clock.now += 11  # past TTL + stale
        try:
            await b.get(REF)
        except SecretUnavailable:
            seen.append("503")
        await b.close()
        return seen

    assert run(scenario()) == ["sk-one", "sk-one", "503"]


def test_a_secret_the_backend_says_is_gone_is_never_served_stale() -> None:
    resolver, clock = Scripted("sk-one", SecretMissing("gone")), Clock()
    b = broker(resolver, clock, ttl=60, stale=300)

    async def scenario() -> list[str]:
        seen = [(await b.get(REF)).reveal()]
        clock.now += 61  # inside the stale window: served once while the refresh runs
        seen.append((await b.get(REF)).reveal())
        await settle()  # the refresh hears "gone": the key is dropped
        try:
            await b.get(REF)
        except SecretUnavailable:
            seen.append("503")
        await b.close()
        return seen

    assert run(scenario()) == ["sk-one", "sk-one", "503"]


def test_invalidating_the_rejected_key_refetches_but_a_newer_key_is_kept() -> None:
    resolver, clock = Scripted("sk-old", "sk-new", "sk-newest"), Clock()
    b = broker(resolver, clock)

    async def scenario() -> list[str]:
        old = await b.get(REF)
        b.invalidate(REF, old)
        new = await b.get(REF)
        b.invalidate(REF, old)  # a late 401 for the old key must not drop the new one
        kept = await b.get(REF)
        await b.close()
        return [old.reveal(), new.reveal(), kept.reveal()]

    assert run(scenario()) == ["sk-old", "sk-new", "sk-new"]
    assert resolver.fetches == 2


def test_the_sweeper_drops_expired_keys_and_the_redactor_forgets_them() -> None:
    resolver, clock, redactor = Scripted("sk-held-value-123"), Clock(), Redactor()
    b = SecretBroker({"vault": resolver}, ttl=60, clock=clock, redactor=redactor)

    async def scenario() -> list[str]:
        await b.get(REF)
        held = [redactor.scrub("x sk-held-value-123 x")]
        assert b.cached() == 1
        clock.now += 61
        b.sweep()
        held.append(redactor.scrub("x sk-held-value-123 x"))
        await b.close()
        return held

    held, after = run(scenario())
    assert "sk-held-value-123" not in held
    assert "sk-held-value-123" in after  # no longer held, so no longer a registered value
    assert b.cached() == 0


def test_an_unconfigured_backend_is_unavailable_not_a_crash() -> None:
    b = SecretBroker(redactor=Redactor())

    async def scenario() -> None:
        with pytest.raises(SecretUnavailable):
            await b.get(REF)
        await b.close()

    run(scenario())


@pytest.mark.openbao
def test_one_hundred_concurrent_requests_on_a_cold_cache_make_exactly_one_vault_read(
    bao_lab: VaultLab,
) -> None:
    p = "llm/" + uuid.uuid4().hex
    bao_lab.put(p, api_key="sk-burst-0000000000000000")
    b = SecretBroker({"vault": bao_lab.token_resolver(bao_lab.server.root_token)})
    ref = parse_ref(f"vault:{bao_lab.kv2}/{p}#api_key")

    async def burst() -> set[str]:
        values = await asyncio.gather(*(b.get(ref) for _ in range(100)))
        await b.close()
        return {v.reveal() for v in values}

    assert run(burst()) == {"sk-burst-0000000000000000"}
    assert bao_lab.server.reads(f"{bao_lab.kv2}/data/{p}") == 1
