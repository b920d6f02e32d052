"""The watch sees a file appear, change or vanish under the import roots, fast and cheaply."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import time
from pathlib import Path

import pytest

from verify import watch
from verify.findings import Finding

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


def tree_at(root: Path, bound: bool = True) -> watch.Tree:
    stamps = watch.walk([str(root)])
    hashes = {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in stamps}
    return watch.Tree([str(root)], stamps, hashes, bytecode_bound=bound)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    site = tmp_path / "site-packages"
    (site / "pkg" / "__pycache__").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("X = 1\n")
    (site / "pkg" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"pyc")
    return site


def reasons(found: list[Finding]) -> dict[str, str]:
    return {f.subject: f.reason for f in found}


@pytest.mark.parametrize("use_inotify", [True, False], ids=["inotify", "stat-scan"])
def test_a_new_pth_a_changed_module_and_a_removed_file_are_each_named(
    root: Path, use_inotify: bool
) -> None:
    w = watch.Watch(tree_at(root), use_inotify=use_inotify)
    try:
        (root / "zz telemetry.pth").write_text("import os\n")
        (root / "pkg" / "__init__.py").write_text("X = 2\n")
        (root / "pkg" / "__pycache__" / "__init__.cpython-311.pyc").unlink()
        found = reasons(w.drain() if use_inotify else w.scan())
    finally:
        w.close()
    assert found == {
        str(root / "zz telemetry.pth"): "new or changed .pth file",
        str(root / "pkg" / "__init__.py"): "file changed after start-up",
        str(root / "pkg" / "__pycache__" / "__init__.cpython-311.pyc"): (
            "file vanished after start-up"
        ),
    }


@linux
def test_a_file_in_a_directory_created_after_the_start_is_seen(root: Path) -> None:
    w = watch.Watch(tree_at(root))
    try:
        assert w.inotify is not None
        (root / "evil").mkdir()
        (root / "evil" / "sitecustomize.py").write_text("import os\n")
        found = reasons(w.drain())
        (root / "evil" / "later.py").write_text("import os\n")
        later = reasons(w.drain())
    finally:
        w.close()
    assert found[str(root / "evil" / "sitecustomize.py")] == "new or changed sitecustomize"
    assert later == {str(root / "evil" / "later.py"): "file appeared after start-up"}


def test_a_touch_or_a_rewrite_with_the_same_bytes_is_no_alarm(root: Path) -> None:
    w = watch.Watch(tree_at(root))
    try:
        module = root / "pkg" / "__init__.py"
        os.utime(module, (1, 1))
        module.write_text("X = 1\n")
        assert w.drain() == [] and w.scan() == []
    finally:
        w.close()


def test_each_change_is_reported_once(root: Path) -> None:
    w = watch.Watch(tree_at(root), use_inotify=False)
    try:
        (root / "late.pth").write_text("import os\n")
        assert len(w.scan()) == 1
        assert w.scan() == []
    finally:
        w.close()


def test_outside_sealgate_s_layout_bytecode_python_writes_for_a_known_source_is_ignored(
    root: Path,
) -> None:
    w = watch.Watch(tree_at(root, bound=False), use_inotify=False)
    (root / "pkg" / "__pycache__" / "__init__.cpython-312.pyc").write_bytes(b"new")
    (root / "pkg" / "__pycache__" / "orphan.cpython-311.pyc").write_bytes(b"new")
    assert list(reasons(w.scan())) == [str(root / "pkg" / "__pycache__" / "orphan.cpython-311.pyc")]


async def _first_report(w: watch.Watch, interval: float, change: Path) -> float:
    seen: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def report(found: list[Finding]) -> None:
        if not seen.done() and str(change) in reasons(found):
            seen.set_result(time.monotonic())

    task = asyncio.create_task(watch.run(w, interval, report))
    await asyncio.sleep(0.3)
    start = time.monotonic()
    change.write_text("import os\n")
    try:
        return await asyncio.wait_for(seen, timeout=10) - start
    finally:
        task.cancel()


@pytest.mark.parametrize("use_inotify", [True, False], ids=["inotify", "stat-scan"])
def test_the_running_watch_reports_a_change_within_the_default_interval(
    root: Path, use_inotify: bool
) -> None:
    w = watch.Watch(tree_at(root), use_inotify=use_inotify)
    latency = asyncio.run(_first_report(w, 5.0, root / "zz_late.pth"))
    assert latency < (1.0 if use_inotify else 5.5)


def test_an_idle_watch_costs_well_under_one_percent_of_a_core(root: Path) -> None:
    for i in range(300):
        (root / "pkg" / f"m{i}.py").write_text("X = 1\n")
    w = watch.Watch(tree_at(root))

    async def idle(watching: bool) -> float:
        task = asyncio.create_task(watch.run(w, 0.5, lambda found: None)) if watching else None
        await asyncio.sleep(1.0)  # the first scan of the 300 files is start-up, not idling
        cpu = time.process_time()
        await asyncio.sleep(3)
        spent = time.process_time() - cpu
        if task is not None:
            task.cancel()
        return spent

    # process_time counts every thread of the test process: in a full run, threads other tests
    # left behind (database watchdogs, test servers) spend a little of it too, so the watch's
    # own cost is what three idle seconds cost with it over three without it
    without = asyncio.run(idle(watching=False))
    assert (asyncio.run(idle(watching=True)) - without) / 3 < 0.01
