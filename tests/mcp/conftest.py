"""Fixtures for the MCP gateway tests: one stack (tests/mcp/stack.py) per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.mcp.stack import Stack
from tests.secrets.openbao_server import OpenBao
from tests.secrets.vaultlab import VaultLab


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    bao = OpenBao(tmp_path_factory.mktemp("openbao"))
    bao.start()
    lab = VaultLab(bao, tmp_path_factory.mktemp("lab"))
    running = Stack(lab, tmp_path_factory.mktemp("mcp")).start()
    yield running
    running.stop()
    bao.stop()
