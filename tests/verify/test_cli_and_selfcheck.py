"""The CLI contract and the self-check API, against the interpreter running the tests.

That interpreter is the clean dev venv (.venv-dev: requirements-dev.lock + requirements-build.lock
+ the project editable), which CI builds the same way: it must give zero findings.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from verify import cli, selfcheck
from verify.facts import gather

from .conftest import DEV_LOCKS, POLICIES

LOCK_ARGS = [arg for lock in DEV_LOCKS for arg in ("--lock", str(lock))]


def test_the_clean_dev_venv_with_the_editable_install_gives_zero_findings(python: str) -> None:
    report = selfcheck.run(python, DEV_LOCKS, POLICIES)
    assert report.problems == ()
    assert report.clean
    checks = {f.check for f in report.findings}
    assert checks == {"pth", "record", "lock"}
    assert any(f.subject.endswith("__editable__.sealgate-0.1.0.pth") for f in report.findings)


def test_env_exits_0_on_the_clean_venv_and_prints_the_report_on_stdout(
    python: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["env", "--target-python", python, "--policies", str(POLICIES), *LOCK_ARGS])
    out, err = capsys.readouterr()
    assert code == 0
    assert out.startswith("clean:")
    assert "clean:" in err


def test_findings_exit_1_and_json_names_them(
    python: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Against the runtime lock alone, the dev tools installed here are not in the lock.
    only_runtime = ["--lock", str(POLICIES.parent / "requirements.lock")]
    code = cli.main(
        [
            "lock",
            "--target-python",
            python,
            "--policies",
            str(POLICIES),
            "--format",
            "json",
            *only_runtime,
            "--lock",
            str(DEV_LOCKS[1]),
        ]
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert doc["clean"] is False
    pytest_row = next(f for f in doc["findings"] if f["subject"] == "pytest")
    assert pytest_row["status"] == "finding"
    assert "not in the lock" in pytest_row["reason"]


def test_sarif_output_is_sarif_2_1_0_with_one_result_per_problem(
    python: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        [
            "lock",
            "--target-python",
            python,
            "--policies",
            str(POLICIES),
            "--format",
            "sarif",
            "--lock",
            str(POLICIES.parent / "requirements.lock"),
            "--lock",
            str(DEV_LOCKS[1]),
        ]
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert doc["version"] == "2.1.0"
    results = doc["runs"][0]["results"]
    assert results and all(r["ruleId"] == "sealgate-verify/lock" for r in results)


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["no-such-command"]) == 2
    assert cli.main(["env", "--format", "xml"]) == 2


def test_an_unrunnable_target_or_unreadable_lock_exits_2(
    python: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["env", "--target-python", str(tmp_path / "nope")]) == 2
    code = cli.main(["lock", "--target-python", python, "--lock", str(tmp_path / "missing")])
    assert code == 2
    assert "cannot read lock file" in capsys.readouterr().err


def test_options_come_from_environment_variables(
    python: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SEALGATE_VERIFY_TARGET_PYTHON", python)
    monkeypatch.setenv("SEALGATE_VERIFY_POLICIES", str(POLICIES))
    monkeypatch.setenv("SEALGATE_VERIFY_LOCKS", ":".join(str(p) for p in DEV_LOCKS))
    monkeypatch.setenv("SEALGATE_VERIFY_FORMAT", "json")
    assert cli.main(["env"]) == 0
    assert json.loads(capsys.readouterr().out)["clean"] is True


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert "Exit 0 clean, 1 findings, 2" in capsys.readouterr().out


def test_the_baseline_sees_no_change_when_nothing_changed(python: str) -> None:
    baseline = selfcheck.Baseline.capture(python)
    assert baseline.changes() == []


def test_the_probe_runs_isolated_without_site_in_the_target(python: str) -> None:
    facts = gather(python)
    assert facts.prefix == sys.prefix
    assert any(d.endswith("site-packages") for d in facts.site_dirs)
    assert {"python_full_version", "sys_platform"} <= set(facts.markers)
