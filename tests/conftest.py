"""Shared fixtures: a fake OpenAI-wire upstream, and the gateway as a real subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.installs import Installed, install


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def upstream(upstream_server: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream_server.reset()
    yield upstream_server
    upstream_server.reset()


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``pytest.mark.anyio``) run on asyncio, the loop the gateway serves on."""
    return "asyncio"


REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Sealgate installed once per session by docker/install.sh (the image's build stage and
    `make run`), with no release key: the manifest is signed by a key made for the install."""
    base, done = install(tmp_path_factory.mktemp("installed"))
    assert done.returncode == 0, done.stderr[-4000:]
    return base
