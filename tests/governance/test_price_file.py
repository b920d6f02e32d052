"""The bundled price table covers the native providers, each row with its source and date; an
operator's own price file is used only once its signature verifies, and an unsigned, tampered or
wrongly signed one refuses start-up with a clear error (``gateway/governance/price_file.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.config.governance import Governance as GovernanceSettings
from gateway.errors import ConfigError
from gateway.governance import price_file
from gateway.governance.pricing import Price, PriceTable
from gateway.values import Usage

ADMIN = "sga-" + "p" * 24
NATIVE = (
    "openai",
    "anthropic",
    "gemini",
    "bedrock",
    "cohere",
    "mistral",
    "deepseek",
    "groq",
    "xai",
)
OWN_TABLE = {
    "taken": "2026-11-01",
    "models": {
        "gpt-4o": {"input": "2.00", "cached_input": "1.00", "output": "8.00", "source": "contract"},
        "in-house-llm": {"input": "0.10", "output": "0.20"},
    },
}


def pem_pair() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """A price file signed with a fresh key: (file, public key file, private key PEM)."""
    private, public = pem_pair()
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(OWN_TABLE))
    price_file.sign(path, private)
    key = tmp_path / "prices.pub.pem"
    key.write_bytes(public)
    return path, key, private


def test_the_bundled_table_covers_every_native_provider_with_source_and_date() -> None:
    raw = json.loads((Path(price_file.__file__).parent.parent / "data" / "prices.json").read_text())
    rows = raw["models"]
    assert {row["provider"] for row in rows.values()} >= set(NATIVE)
    for name, row in rows.items():
        assert row["source"] and row["date"] >= "2025-01-01", name
    for model in ("claude-opus-4-5", "claude-sonnet-4-5-20250929", "claude-haiku-4-5", "gpt-5"):
        assert model in rows
    assert rows["claude-sonnet-4-5"]["cache_write"] == "3.75"  # Anthropic charges cache writes
    assert rows["gemini-2.5-flash"]["cached_input"] == "0.03"
    assert "anthropic.claude-sonnet-4-5-20250929-v1:0" in rows  # Bedrock's model ids
    table = PriceTable.bundled()
    assert table.taken == max(row["date"] for row in rows.values())
    assert len(table.models) == len(rows)


def test_a_row_with_a_wrong_price_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"models.m.output: .*decimal"):
        PriceTable.parse({"taken": "2026-01-01", "models": {"m": {"input": "1", "output": 2}}})
    with pytest.raises(ValueError, match=r"models.m: unknown key 'inptu'"):
        PriceTable.parse({"taken": "2026-01-01", "models": {"m": {"input": "1", "inptu": "1"}}})
    with pytest.raises(ValueError, match="taken"):
        PriceTable.parse({"models": {}})


def test_a_signed_price_file_replaces_the_bundled_rows_it_names(
    signed: tuple[Path, Path, bytes],
) -> None:
    path, key, _ = signed
    settings = GovernanceSettings(price_file=str(path), price_key=str(key))
    table = price_file.price_table(settings)
    assert table.models["gpt-4o"] == Price.per_million(Decimal(2), Decimal(8), Decimal(1))
    assert table.models["in-house-llm"].cost(Usage(10, 10)) == 10 * 100 + 10 * 200
    assert table.models["gpt-4o-mini"] == PriceTable.bundled().models["gpt-4o-mini"]


def test_an_unsigned_price_file_is_refused(signed: tuple[Path, Path, bytes]) -> None:
    path, key, _ = signed
    price_file.signature_path(path).unlink()
    with pytest.raises(ConfigError, match=r"is not signed \(no prices.json.sig beside it\)"):
        price_file.load(path, key)


def test_a_price_file_changed_after_signing_is_refused(signed: tuple[Path, Path, bytes]) -> None:
    path, key, _ = signed
    path.write_text(path.read_text().replace('"2.00"', '"0.00"'))
    with pytest.raises(ConfigError, match="signature does not verify"):
        price_file.load(path, key)


def test_a_price_file_signed_with_another_key_is_refused(
    signed: tuple[Path, Path, bytes],
) -> None:
    path, key, _ = signed
    other, _ = pem_pair()
    price_file.sign(path, other)
    with pytest.raises(ConfigError, match="signature does not verify"):
        price_file.load(path, key)


def test_a_signed_file_that_is_not_a_price_table_is_refused(
    signed: tuple[Path, Path, bytes],
) -> None:
    path, key, private = signed
    path.write_text('{"taken": "2026-01-01", "models": {"m": {"output": "1"}}}')
    price_file.sign(path, private)
    with pytest.raises(ConfigError, match=r"is not a price table: models\.m"):
        price_file.load(path, key)


def test_a_price_file_without_a_key_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="price_file needs price_key"):
        GovernanceSettings(price_file="/etc/sealgate/prices.json")


def serve(tmp_path: Path, config: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALGATE_")}
    env |= {"SEALGATE_VERIFY_MODE": "off", "SEALGATE_ADMIN_KEY": ADMIN}
    command = [sys.executable, "-m", "gateway", "serve", "--port", "1", "--config", str(path)]
    command += ["--data-dir", str(tmp_path / "d")]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_serve_refuses_to_start_with_a_tampered_or_unsigned_price_file(
    signed: tuple[Path, Path, bytes], tmp_path: Path
) -> None:
    path, key, _ = signed
    config = f"""
deployments:
  - model: m
    provider: mock
verify:
  mode: "off"
governance:
  price_file: {path}
  price_key: {key}
"""
    path.write_text(path.read_text().replace("0.10", "0.01"))
    tampered = serve(tmp_path, config)
    assert tampered.returncode == 2, tampered.stderr
    assert "governance.price_file" in tampered.stderr
    assert "signature does not verify" in tampered.stderr
    price_file.signature_path(path).unlink()
    unsigned = serve(tmp_path, config)
    assert unsigned.returncode == 2, unsigned.stderr
    assert "is not signed" in unsigned.stderr
