"""Vulnerability audit against a loopback OSV-compatible server (the real HTTP path)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from verify import cli, lockfile, vulns
from verify.findings import Status

from .osv_server import OsvServer

H = "b" * 64
LOCK = f"""idna==3.10 \\
    --hash=sha256:{H}
litellm==1.82.8 ; sys_platform == 'win32' \\
    --hash=sha256:{H}
"""


@pytest.fixture
def lock(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.lock"
    path.write_text(LOCK)
    return path


def pins(lock: Path) -> list[lockfile.Pin]:
    return lockfile.load([lock])


def test_a_vulnerable_pinned_version_is_a_finding_and_a_clean_one_is_ok(lock: Path) -> None:
    with OsvServer({("litellm", "1.82.8"): ["PYSEC-2026-2", "GHSA-xxxx"]}) as osv:
        results = {f.subject: f for f in vulns.audit(pins(lock), osv.url)}
    assert results["litellm==1.82.8"].status is Status.FINDING
    assert "GHSA-xxxx, PYSEC-2026-2" in results["litellm==1.82.8"].reason
    assert results["idna==3.10"].status is Status.OK
    sent = osv.requests[0]["body"]["queries"]
    assert {"package": {"name": "idna", "ecosystem": "PyPI"}, "version": "3.10"} in sent


def test_a_failed_lookup_is_unaudited_never_clean(lock: Path) -> None:
    with OsvServer({}) as osv:
        osv.fail_with = 503
        results = vulns.audit(pins(lock), osv.url)
    assert len(results) == 2
    assert all(f.status is Status.FINDING and f.reason.startswith("unaudited") for f in results)


def test_a_pin_the_service_did_not_answer_for_is_unaudited(lock: Path) -> None:
    with OsvServer({}) as osv:
        osv.truncate = True
        results = {f.subject: f for f in vulns.audit(pins(lock), osv.url)}
    assert results["idna==3.10"].status is Status.OK
    assert results["litellm==1.82.8"].reason.startswith("unaudited")


def test_an_unreachable_service_is_unaudited(lock: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = vulns.audit(pins(lock), f"http://127.0.0.1:{port}/v1/querybatch", timeout=2)
    assert all(f.reason.startswith("unaudited: lookup failed") for f in results)


def test_the_vulns_command_reads_the_endpoint_from_the_environment_and_exits_1(
    lock: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with OsvServer({("idna", "3.10"): ["PYSEC-0000-1"]}) as osv:
        monkeypatch.setenv("SEALGATE_VERIFY_OSV_URL", osv.url)
        monkeypatch.setenv("SEALGATE_VERIFY_LOCKS", str(lock))
        code = cli.main(["vulns", "--format", "json"])
        with_clean = OsvServer({})
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [f["subject"] for f in doc["findings"] if f["status"] == "finding"] == ["idna==3.10"]
    with with_clean as osv:
        assert cli.main(["vulns", "--lock", str(lock), "--osv-url", osv.url]) == 0
