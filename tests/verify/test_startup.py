"""The verifier runs isolated end to end: ``python -m verify`` re-executes itself ``-I -S -B``,
the environment checks import the standard library alone, and the check's first stage imports
nothing of ``verify`` beyond ``verify.startup.TRUSTED_BASE``."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from verify import startup

from .conftest import DEV_LOCKS, POLICIES, REPO

LOCK_ARGS = [arg for lock in DEV_LOCKS for arg in ("--lock", str(lock))]


def isolated(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``code`` in ``-I -S -B`` with only the standard library and the repository on the path."""
    prelude = f"import sys; sys.path[:] = [p for p in sys.path if p] + [{str(REPO)!r}]\n"
    return subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", prelude + code, *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_environment_checks_run_with_the_standard_library_alone() -> None:
    code = (
        "from verify import cli\n"
        "rc = cli.main(['env', '--policies', sys.argv[1], *sys.argv[2:]])\n"
        "outside = sorted({m.split('.')[0] for m in sys.modules}\n"
        "                 - set(sys.stdlib_module_names) - {'__main__'})\n"
        "print('RESULT', rc, outside)\n"
    )
    done = isolated(code, str(POLICIES), *LOCK_ARGS)
    assert "RESULT 0 ['verify']" in done.stdout, done.stderr[-2000:]


def test_the_first_stage_imports_only_the_trusted_base() -> None:
    code = (
        "from verify import startup\n"
        "from verify.facts import gather\n"
        "startup.bind(gather(sys.executable))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'verify')))\n"
    )
    done = isolated("import json\n" + code)
    assert json.loads(done.stdout.splitlines()[-1]) == sorted(startup.TRUSTED_BASE), done.stderr


def test_verify_never_imports_gateway() -> None:
    for path in sorted((REPO / "verify").glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n == "gateway" or n.startswith("gateway.") for n in names), path


def test_python_m_verify_re_executes_itself_isolated_and_reports_on_stdout(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "verify", "pth", "--policies", str(POLICIES), "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["clean"] is True
    flags = subprocess.run(
        [
            sys.executable,
            "-c",
            "import runpy, sys; sys.argv = ['verify', '--help']; "
            "import os; os.execv = lambda exe, argv: print('EXEC', argv[1:4]) or sys.exit(0); "
            "runpy.run_module('verify', run_name='__main__')",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "EXEC ['-I', '-S', '-B']" in flags.stdout, flags.stderr


def test_a_mode_the_launcher_does_not_know_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(startup.MODE_ENV, "lenient")
    with pytest.raises(startup.VerifyError, match="expected one of enforce, warn, off"):
        startup.mode_from_env()
    monkeypatch.setenv(startup.MODE_ENV, "warn")
    assert startup.mode_from_env() == "warn"
