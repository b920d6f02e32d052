"""Fixtures for the secrets tests: a real OpenBao (or the Vault in VAULT_ADDR/VAULT_TOKEN)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.secrets.openbao_server import ExternalVault, OpenBao
from tests.secrets.vaultlab import VaultLab


@pytest.fixture(scope="session")
def vault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao | ExternalVault]:
    address, token = os.environ.get("VAULT_ADDR"), os.environ.get("VAULT_TOKEN")
    if address and token:
        yield ExternalVault(address, token)
        return
    server = OpenBao(tmp_path_factory.mktemp("openbao"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def lab(vault_server: OpenBao | ExternalVault, tmp_path: Path) -> Iterator[VaultLab]:
    """Fresh KV v2 and KV v1 mounts on the shared server for one test."""
    lab = VaultLab(vault_server, tmp_path)
    yield lab
    lab.cleanup()


@pytest.fixture
def bao(tmp_path: Path) -> Iterator[OpenBao]:
    """A private OpenBao dev server the test may stop, restart or seal, with an audit log."""
    server = OpenBao(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def bao_lab(bao: OpenBao, tmp_path: Path) -> VaultLab:
    return VaultLab(bao, tmp_path)
