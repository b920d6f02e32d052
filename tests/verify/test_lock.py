from __future__ import annotations

import pytest

from verify import lock, lockfile
from verify.findings import VerifyError
from verify.markers import MarkerError, evaluate

from .factsbuild import MARKERS, FakeEnv

H = "a" * 64
LOCK = f"""# generated
idna==3.10 \\
    --hash=sha256:{H}
    # via requests
uvloop==0.23.0 ; sys_platform != 'win32' \\
    --hash=sha256:{H}
colorama==0.4.6 ; sys_platform == 'win32' \\
    --hash=sha256:{H}
async-timeout==5.0.1 ; python_full_version < '3.11.3' \\
    --hash=sha256:{H}
"""


def reasons(env: FakeEnv, text: str = LOCK) -> dict[str, str]:
    pins = lockfile.applicable(lockfile.parse(text, "test.lock"), MARKERS)
    return {r.subject: r.reason for r in lock.run(env.facts(), pins) if not r.passed}


def conforming() -> FakeEnv:
    env = FakeEnv().install("idna", "3.10", {}).install("uvloop", "0.23.0", {})
    return env.install("sealgate", "0.1.0", {})


def test_the_installed_set_equal_to_the_lock_for_the_targets_markers_passes() -> None:
    assert reasons(conforming()) == {}


def test_a_distribution_not_in_the_lock_is_a_finding() -> None:
    assert reasons(conforming().install("evil", "1.0", {})) == {
        "evil": "evil 1.0 is not in the lock"
    }


def test_a_wrong_version_is_a_finding() -> None:
    env = FakeEnv().install("idna", "3.9", {}).install("uvloop", "0.23.0", {})
    env.install("sealgate", "0.1.0", {})
    assert reasons(env) == {"idna": "installed 3.9, lock pins 3.10"}


def test_a_missing_pin_is_a_finding() -> None:
    env = FakeEnv().install("idna", "3.10", {}).install("sealgate", "0.1.0", {})
    assert reasons(env) == {"uvloop": "locked 0.23.0 is not installed"}


def test_names_compare_normalized() -> None:
    env = FakeEnv().install("IDNA", "3.10", {}).install("UVLoop", "0.23.0", {})
    assert reasons(env.install("sealgate", "0.1.0", {})) == {}


def test_a_lock_line_without_hashes_or_with_an_index_url_is_rejected() -> None:
    with pytest.raises(VerifyError, match=r"test\.lock:1"):
        lockfile.parse("idna==3.10\n", "test.lock")
    with pytest.raises(VerifyError, match="not a hash-locked pin"):
        lockfile.parse("--index-url https://evil.example/simple\n", "test.lock")


def test_markers_evaluate_against_the_target_environment() -> None:
    assert evaluate("python_full_version < '3.11.3'", {"python_full_version": "3.11.2"})
    assert not evaluate("python_full_version < '3.11.3'", {"python_full_version": "3.11.10"})
    assert evaluate(
        "python_version >= '3.11' and (sys_platform == 'win32' or os_name == 'posix')", MARKERS
    )
    assert evaluate("python_version ~= '3.10'", MARKERS)
    assert evaluate("'linux' in sys_platform", MARKERS)
    with pytest.raises(MarkerError):
        evaluate("nonsense_var == '1'", MARKERS)


def test_every_marker_in_the_projects_locks_evaluates() -> None:
    from .conftest import REPO

    for name in ("requirements.lock", "requirements-dev.lock", "requirements-build.lock"):
        assert lockfile.applicable(lockfile.load([REPO / name]), MARKERS)
