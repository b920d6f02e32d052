"""gateway.runtime: the collector settles once start-up is done, and still frees what serving
makes."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from gateway import runtime


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test session collects as before


class Node:
    other: Node | None = None


def test_settle_freezes_what_start_up_left_and_a_cycle_made_afterwards_is_still_freed(
    unfrozen: None,
) -> None:
    before = gc.get_freeze_count()
    frozen = runtime.settle()
    assert frozen > before and frozen == gc.get_freeze_count()
    a, b = Node(), Node()
    a.other, b.other = b, a  # a reference cycle, made while "serving"
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None
