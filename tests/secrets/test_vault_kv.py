"""Reading provider keys from a real OpenBao (or Vault): KV v2, version pins, KV v1, rotation,
and what happens when the policy or the path is wrong."""

from __future__ import annotations

import logging
import uuid

import pytest

from gateway.errors import SecretUnavailable
from gateway.refs import parse_ref
from gateway.secrets.broker import SecretBroker
from gateway.secrets.errors import AccessDenied, SecretMissing
from tests.secrets.vaultlab import VaultLab, run

pytestmark = pytest.mark.openbao


class Clock:
    """A clock the test moves by hand: the TTL is about time, and a test must not wait for it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def path() -> str:
    return "llm/" + uuid.uuid4().hex


def test_a_kv2_reference_resolves_to_the_latest_version_of_the_field(lab: VaultLab) -> None:
    p = path()
    lab.put(p, api_key="sk-first-0000000000000000", other="x")
    lab.put(p, api_key="sk-second-000000000000000")
    resolver = lab.token_resolver(lab.server.root_token)

    async def fetch() -> str:
        try:
            return (await resolver.fetch(parse_ref(f"vault:{lab.kv2}/{p}#api_key"))).reveal()
        finally:
            await resolver.close()

    assert run(fetch()) == "sk-second-000000000000000"


def test_a_version_pin_reads_that_version_even_after_rotation(lab: VaultLab) -> None:
    p = path()
    first = lab.put(p, api_key="sk-pinned-00000000000000")
    lab.put(p, api_key="sk-newer-000000000000000")
    resolver = lab.token_resolver(lab.server.root_token)

    async def fetch() -> str:
        try:
            ref = parse_ref(f"vault:{lab.kv2}/{p}#api_key?version={first}")
            return (await resolver.fetch(ref)).reveal()
        finally:
            await resolver.close()

    assert run(fetch()) == "sk-pinned-00000000000000"


def test_a_kv1_reference_reads_the_field(lab: VaultLab) -> None:
    p = path()
    lab.put_v1(p, api_key="sk-kv1-00000000000000000")
    resolver = lab.token_resolver(lab.server.root_token)

    async def fetch() -> str:
        try:
            return (await resolver.fetch(parse_ref(f"vault-kv1:{lab.kv1}/{p}#api_key"))).reveal()
        finally:
            await resolver.close()

    assert run(fetch()) == "sk-kv1-00000000000000000"


def test_a_rotated_secret_is_served_from_memory_until_the_ttl_then_the_new_one(
    lab: VaultLab,
) -> None:
    p = path()
    lab.put(p, api_key="sk-before-rotation-000000")
    clock = Clock()
    broker = SecretBroker({"vault": lab.token_resolver(lab.server.root_token)}, ttl=60, clock=clock)
    ref = parse_ref(f"vault:{lab.kv2}/{p}#api_key")

    async def scenario() -> list[str]:
        seen = [(await broker.get(ref)).reveal()]
        lab.put(p, api_key="sk-after-rotation-0000000")
        clock.now += 59
        seen.append((await broker.get(ref)).reveal())
        clock.now += 2
        seen.append((await broker.get(ref)).reveal())
        await broker.close()
        return seen

    assert run(scenario()) == [
        "sk-before-rotation-000000",
        "sk-before-rotation-000000",
        "sk-after-rotation-0000000",
    ]


def test_a_missing_field_or_path_is_a_configuration_error(lab: VaultLab) -> None:
    p = path()
    lab.put(p, api_key="sk-present-0000000000000")
    resolver = lab.token_resolver(lab.server.root_token)

    async def fetch(ref: str) -> BaseException:
        try:
            await resolver.fetch(parse_ref(ref))
        except SecretMissing as exc:
            return exc
        raise AssertionError("expected SecretMissing")

    async def both() -> list[BaseException]:
        try:
            return [
                await fetch(f"vault:{lab.kv2}/{p}#no_such_field"),
                await fetch(f"vault:{lab.kv2}/{p}-absent#api_key"),
            ]
        finally:
            await resolver.close()

    field, absent = run(both())
    assert "no_such_field" in str(field)
    assert "nothing at that path" in str(absent)


def test_permission_denied_is_a_clear_configuration_error_with_one_read_and_no_retry(
    bao_lab: VaultLab, caplog: pytest.LogCaptureFixture
) -> None:
    allowed, denied = path(), path()
    bao_lab.put(denied, api_key="sk-forbidden-00000000000")
    token = bao_lab.token(bao_lab.read_policy(f"{bao_lab.kv2}/data/{allowed}"))
    broker = SecretBroker({"vault": bao_lab.token_resolver(token)})
    ref = parse_ref(f"vault:{bao_lab.kv2}/{denied}#api_key")

    async def twice() -> list[SecretUnavailable]:
        errors = []
        for _ in range(2):
            try:
                await broker.get(ref)
            except SecretUnavailable as exc:
                errors.append(exc)
        await broker.close()
        return errors

    with caplog.at_level(logging.ERROR, logger="gateway.secrets.broker"):
        errors = run(twice())
    assert [e.http_status for e in errors] == [503, 503]
    assert all(denied not in e.message and bao_lab.kv2 not in e.message for e in errors)
    reasons = [getattr(r, "sg_reason", "") for r in caplog.records]
    assert any("policy denies" in reason and str(ref) in reason for reason in reasons)
    assert bao_lab.server.reads(f"{bao_lab.kv2}/data/{denied}") == 2  # one per request, no loop


def test_vault_errors_are_re_raised_without_the_vault_response_text(lab: VaultLab) -> None:
    token = lab.token('path "nothing/*" { capabilities = ["read"] }')
    resolver = lab.token_resolver(token)
    ref = parse_ref(f"vault:{lab.kv2}/{path()}#api_key")

    async def fetch() -> AccessDenied:
        try:
            await resolver.fetch(ref)
        except AccessDenied as exc:
            return exc
        finally:
            await resolver.close()
        raise AssertionError("expected AccessDenied")

    error = run(fetch())
    assert str(error) == f"{ref}: Vault policy denies reading it"
    assert error.__cause__ is None
    assert error.__suppress_context__
