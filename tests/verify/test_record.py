from __future__ import annotations

from verify import record
from verify.findings import Severity, Status

from .factsbuild import SITE, FakeEnv, sha


def problems(env: FakeEnv) -> dict[str, str]:
    return {r.subject: r.reason for r in record.run(env.facts()) if not r.passed}


def test_an_intact_distribution_passes() -> None:
    env = FakeEnv().install("idna", "3.10", {"idna/__init__.py": b"x = 1\n"})
    assert problems(env) == {}


def test_a_modified_file_is_a_critical_finding() -> None:
    env = FakeEnv().install("idna", "3.10", {"idna/__init__.py": b"x = 1\n"})
    env.files[f"{SITE}/idna/__init__.py"] = sha(b"x = 2\n")
    [result] = [r for r in record.run(env.facts()) if not r.passed]
    assert result.severity is Severity.CRITICAL
    assert "modified after install" in result.reason


def test_a_missing_file_is_a_finding() -> None:
    env = FakeEnv().install("idna", "3.10", {"idna/__init__.py": b"x = 1\n"})
    del env.files[f"{SITE}/idna/__init__.py"]
    assert "missing" in problems(env)[f"{SITE}/idna/__init__.py"]


def test_an_unowned_module_in_site_packages_is_a_finding() -> None:
    env = FakeEnv().install("idna", "3.10", {"idna/__init__.py": b"x = 1\n"})
    env.drop("helper.py", b"import os\n")
    assert "no distribution's RECORD owns" in problems(env)[f"{SITE}/helper.py"]


def test_bytecode_of_an_owned_source_is_not_unowned_but_stray_bytecode_is() -> None:
    env = FakeEnv().install("idna", "3.10", {"idna/core.py": b"x = 1\n"})
    env.files[f"{SITE}/idna/__pycache__/core.cpython-311.pyc"] = ""
    env.files[f"{SITE}/idna/__pycache__/evil.cpython-311.pyc"] = ""
    assert list(problems(env)) == [f"{SITE}/idna/__pycache__/evil.cpython-311.pyc"]


def test_a_dist_info_without_record_is_a_finding() -> None:
    env = FakeEnv().install("idna", "3.10", {}, record=False)
    [result] = [r for r in record.run(env.facts()) if not r.passed]
    assert result.status is Status.FINDING and "no RECORD" in result.reason


def test_record_hashes_decode_to_hex() -> None:
    assert record.record_hash_hex("sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU") == (
        "sha256",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    )
