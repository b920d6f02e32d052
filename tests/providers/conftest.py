from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.support.fake_native import FakeBedrock, FakeCohere

COHERE_KEY = "co-fake-" + secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def bedrock() -> Iterator[FakeBedrock]:
    server = FakeBedrock("us-east-1")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cohere() -> Iterator[FakeCohere]:
    server = FakeCohere(COHERE_KEY)
    server.start()
    yield server
    server.stop()
