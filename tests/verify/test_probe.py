"""The probe looks where a normal start of the target would look, with the target's own
environment: the user site from HOME / PYTHONUSERBASE, and every directory a .pth path line adds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from verify import pth, selfcheck
from verify.facts import gather
from verify.policies import load_pth_policy

from .conftest import POLICIES
from .wheels import site_packages

pytestmark = pytest.mark.slow
VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"


def venv_with_system_site(where: Path) -> Path:
    """A venv that includes the system site, so a normal start also processes the user site."""
    subprocess.run(
        [sys._base_executable, "-m", "venv", "--without-pip", "--system-site-packages", str(where)],
        check=True,
    )
    return where / "bin" / "python"


def user_site(base: Path) -> Path:
    site = base / "lib" / VERSION / "site-packages"
    site.mkdir(parents=True)
    return site


def test_the_user_site_is_the_one_pythonuserbase_names_not_the_passwd_home(
    tmp_path: Path,
) -> None:
    python = venv_with_system_site(tmp_path / "venv")
    site = user_site(tmp_path / "userbase")
    (site / "zz_user.pth").write_text("import os\n")
    facts = gather(str(python), environ={"PYTHONUSERBASE": str(tmp_path / "userbase")})
    assert str(site) in facts.site_dirs
    assert str(site / "zz_user.pth") in {p.path for p in facts.pth}
    # Without it, the same interpreter's user site is another directory: not this one.
    assert str(site) not in gather(str(python), environ={"HOME": str(tmp_path / "h")}).site_dirs


def test_the_user_site_follows_home_when_pythonuserbase_is_unset(tmp_path: Path) -> None:
    python = venv_with_system_site(tmp_path / "venv")
    home = tmp_path / "home"
    site = user_site(home / ".local")
    (site / "sitecustomize.py").write_text("import os\n")
    facts = gather(str(python), environ={"HOME": str(home)})
    assert str(site) in facts.site_dirs
    assert str(site / "sitecustomize.py") in {h.path for h in facts.hooks}


def test_pythonnousersite_turns_the_user_site_off_as_it_would_for_the_target(
    tmp_path: Path,
) -> None:
    python = venv_with_system_site(tmp_path / "venv")
    home = tmp_path / "home"
    site = user_site(home / ".local")
    facts = gather(str(python), environ={"HOME": str(home), "PYTHONNOUSERSITE": "1"})
    assert str(site) not in facts.site_dirs


def test_a_customize_hook_in_a_directory_a_path_only_pth_adds_is_found_and_refused(
    tmp_path: Path,
) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "v")], check=True)
    python = tmp_path / "v" / "bin" / "python"
    site = site_packages(python)
    extra = tmp_path / "elsewhere"
    extra.mkdir()
    (extra / "sitecustomize.py").write_text("import socket\n")
    (extra / "usercustomize.py").write_text("import socket\n")
    (site / "paths.pth").write_text(f"# a comment\n{extra}\n")
    facts = gather(str(python))
    assert (str(extra), str(site / "paths.pth")) in facts.pth_dirs
    found = {h.path: h.module for h in facts.hooks}
    assert found[str(extra / "sitecustomize.py")] == "sitecustomize"
    assert found[str(extra / "usercustomize.py")] == "usercustomize"
    results = {f.subject: f for f in pth.run(facts, load_pth_policy(POLICIES))}
    assert not results[str(extra / "sitecustomize.py")].passed


def test_every_sitecustomize_on_the_path_is_reported_not_only_the_first(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "v")], check=True)
    python = tmp_path / "v" / "bin" / "python"
    site = site_packages(python)
    first, second = tmp_path / "first", tmp_path / "second"
    for directory in (first, second):
        directory.mkdir()
        (directory / "sitecustomize.py").write_text("X = 1\n")
    (site / "a.pth").write_text(f"{first}\n{second}\n")
    hooks = [h.path for h in gather(str(python)).hooks]
    assert hooks == [str(first / "sitecustomize.py"), str(second / "sitecustomize.py")]


def test_the_env_check_of_such_a_venv_is_not_clean(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "v")], check=True)
    python = tmp_path / "v" / "bin" / "python"
    extra = tmp_path / "elsewhere"
    extra.mkdir()
    (extra / "sitecustomize.py").write_text("import socket\n")
    (site_packages(python) / "paths.pth").write_text(f"{extra}\n")
    report = selfcheck.run(str(python), [], POLICIES, ("pth",), ())
    assert {f.subject for f in report.problems} == {
        str(site_packages(python) / "paths.pth"),
        str(extra / "sitecustomize.py"),
    }
