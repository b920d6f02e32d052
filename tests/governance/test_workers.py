"""``sealgate serve --workers N``: several processes on one port, sharing PostgreSQL and Redis as
replicas do, so a limit holds exactly whichever worker takes a request; embedded mode (SQLite and
in-process counters) refuses more than one worker and says what it would need."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.governance import gateways
from tests.governance.conftest import REDIS_URL
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess


class Workers(GatewayProcess):
    """The gateway with ``--workers``."""

    def __init__(self, workdir: Path, config: str, workers: int) -> None:
        super().__init__(workdir, config)
        self.workers = workers

    def command(self) -> list[str]:
        return [*super().command(), "--workers", str(self.workers)]

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        pid = self.process.pid
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.fixture
def two_workers(
    upstream: FakeUpstream,
    tmp_path: Path,
    postgres_database: Callable[[], str],
    redis_prefix: str,
) -> Iterator[Workers]:
    text = gateways.config(
        upstream,
        storage_url=postgres_database(),
        redis={"url": REDIS_URL, "prefix": redis_prefix},
    )
    process = Workers(tmp_path / "gw", text, 2)
    process.start(wait=False)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def workers_answering(gateway: GatewayProcess, asks: int = 40) -> set[str]:
    """Which workers answered ``asks`` readiness calls, each on a new connection."""
    seen: set[str] = set()
    for _ in range(asks):
        facts = httpx.get(gateway.url + "/health/ready", timeout=10).json()["checks"]["process"]
        seen.add(facts["worker"])
    return seen


def test_embedded_mode_refuses_two_workers_and_names_the_shared_state_it_needs(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    process = Workers(tmp_path / "gw", gateways.config(upstream), 2)
    process.start(wait=False)
    assert process.wait_exit() == 2
    err = process.stderr()
    assert "2 workers need state the workers share" in err
    assert "storage.url" in err and "governance.counters: redis" in err
    assert "Sealgate serving" not in err  # it refused before listening


@pytest.mark.postgres
@pytest.mark.redis
def test_two_workers_share_one_port_and_admit_exactly_the_rpm_limit(two_workers: Workers) -> None:
    assert len(two_workers.worker_pids()) == 2
    assert workers_answering(two_workers) == {"1 of 2", "2 of 2"}
    key = two_workers.create_key([gateways.MODEL], rpm_limit=25)["key"]
    gateways.wait_for_window()
    statuses = gateways.hammer_through(two_workers.url, key, 80)
    assert statuses.count(200) == 25
    assert statuses.count(429) == 55
    gateways.assert_exact_spend(two_workers, 25)


@pytest.mark.postgres
@pytest.mark.redis
def test_sigterm_to_the_supervisor_stops_every_worker(two_workers: Workers) -> None:
    pids = two_workers.worker_pids()
    assert len(pids) == 2 and all(alive(pid) for pid in pids)
    two_workers.stop()
    assert two_workers.process is not None and two_workers.process.returncode == 0
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in pids)


@pytest.mark.postgres
@pytest.mark.redis
def test_a_worker_that_dies_takes_the_others_down_with_a_failing_status(
    two_workers: Workers,
) -> None:
    first, second = two_workers.worker_pids()
    os.kill(first, signal.SIGKILL)
    assert two_workers.wait_exit() == 1  # a worker killed is a failure, not a clean stop
    deadline = time.monotonic() + 15
    while alive(second) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(second)
