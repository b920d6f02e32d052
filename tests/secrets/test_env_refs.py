"""``env:`` references: the variable is taken out of the process environment at start-up (when the
broker is built) and served from memory, so a child process started later does not inherit it and
code that reads ``os.environ`` later does not find it. A Vault login credential given as ``env:``
is taken the same way and serves every login. (/proc/self/environ keeps the block the process
started with; no test can make that go away, and docs/secrets.md says so.)"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import subprocess
import sys
from typing import Any

import pytest

from gateway.config import GatewayConfig
from gateway.errors import SecretUnavailable
from gateway.refs import parse_ref
from gateway.secrets.errors import SecretMissing
from gateway.secrets.local import EnvResolver
from gateway.secrets.setup import build_broker
from gateway.serve import parse_config
from tests.secrets.vaultlab import VaultLab, run


def sections(cfg: GatewayConfig) -> tuple[Any, Any]:
    """What the composition root hands the broker: the secrets section and the references."""
    return cfg.secrets, cfg.credentials()


def variable() -> str:
    return "SG_TEST_" + secrets.token_hex(6).upper()


def config(credential: str, vault: dict[str, Any] | None = None) -> GatewayConfig:
    deployment = {
        "model": "m",
        "provider": "openai_compatible",
        "base_url": "http://127.0.0.1:9/v1",
        "credential": credential,
        "allow_private_network": True,
    }
    text: dict[str, Any] = {"deployments": [deployment], "verify": {"mode": "off"}}
    if vault is not None:
        text["secrets"] = {"vault": vault}
    return parse_config(json.dumps(text), "test")


def seen_by_a_child(name: str) -> str:
    code = f"import os; print(os.environ.get({name!r}, 'absent'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_an_env_credential_leaves_the_environment_at_start_up_and_is_still_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, key = variable(), "sk-env-" + secrets.token_hex(12)
    monkeypatch.setenv(name, key)
    assert seen_by_a_child(name) == key  # the test's own check can see a variable

    broker = build_broker(*sections(config(f"env:{name}")))
    assert name not in os.environ
    assert seen_by_a_child(name) == "absent"

    async def twice() -> list[str]:
        try:
            ref = parse_ref(f"env:{name}")
            first = (await broker.get(ref)).reveal()
            broker.invalidate(ref)  # a cache miss reads from memory again, not the environment
            return [first, (await broker.get(ref)).reveal()]
        finally:
            await broker.close()

    assert run(twice()) == [key, key]


def test_an_env_credential_whose_variable_was_never_set_is_missing_and_named() -> None:
    name = variable()
    build_broker(*sections(config(f"env:{name}")))

    async def fetch() -> str:
        try:
            await EnvResolver().fetch(parse_ref(f"env:{name}"))
        except SecretMissing as exc:
            return str(exc)
        raise AssertionError("expected SecretMissing")

    assert run(fetch()) == f"env:{name}: the variable was not set, or empty, at start-up"


def test_a_variable_set_again_after_start_up_replaces_the_one_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = variable()
    monkeypatch.setenv(name, "sk-first-000000000000")
    build_broker(*sections(config(f"env:{name}")))
    monkeypatch.setenv(name, "sk-second-00000000000")

    async def fetch() -> str:
        return (await EnvResolver().fetch(parse_ref(f"env:{name}"))).reveal()

    assert run(fetch()) == "sk-second-00000000000"
    assert name not in os.environ


@pytest.mark.openbao
def test_a_vault_token_from_env_leaves_the_environment_and_serves_the_login(
    lab: VaultLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, path = variable(), "llm/" + secrets.token_hex(8)
    lab.put(path, api_key="sk-env-vault-0000000000")
    monkeypatch.setenv(name, lab.token(lab.read_policy(f"{lab.kv2}/data/{path}")))
    vault = {"address": lab.server.address, "auth": {"method": "token", "token": f"env:{name}"}}
    broker = build_broker(*sections(config(f"vault:{lab.kv2}/{path}#api_key", vault)))
    assert name not in os.environ
    assert seen_by_a_child(name) == "absent"

    async def fetch() -> str:
        try:
            return (await broker.get(parse_ref(f"vault:{lab.kv2}/{path}#api_key"))).reveal()
        except SecretUnavailable:
            return "unavailable"
        finally:
            await broker.close()

    assert run(fetch()) == "sk-env-vault-0000000000"


def test_an_unset_env_credential_is_logged_by_name_and_keeps_the_replica_not_ready(
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = variable()
    with caplog.at_level(logging.WARNING, logger="gateway.secrets.setup"):
        broker = build_broker(*sections(config(f"env:{name}")))
    (warning,) = [r for r in caplog.records if getattr(r, "sg_variable", None) == name]
    assert warning.sg_key == "deployments.0.credential"  # type: ignore[attr-defined]
    health = asyncio.run(broker.health())
    assert health["env"] == {"ok": False, "unset": [name]}


def test_a_set_env_credential_keeps_the_env_backend_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    name = variable()
    monkeypatch.setenv(name, "sk-env-" + secrets.token_hex(12))
    broker = build_broker(*sections(config(f"env:{name}")))
    assert asyncio.run(broker.health())["env"] == {"ok": True}
