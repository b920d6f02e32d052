"""``python -m bench.translation`` runs and prints a row per provider path with its delta."""

from __future__ import annotations

import pytest

from bench import translation


def test_the_translation_bench_prints_every_path_with_its_delta(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert translation.main(["--batch", "2", "--batches", "1"]) == 0
    out = capsys.readouterr().out
    for path in ("gemini JSON", "vertex JSON (+ held token)", "gemini stream (3 events)"):
        row = next(line for line in out.splitlines() if line.startswith(f"| {path} |"))
        assert row.split("|")[3].strip().startswith(("+", "-"))
