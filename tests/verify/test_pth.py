from __future__ import annotations

from verify import pth
from verify.findings import Severity, Status
from verify.policies import AllowedPth, PthPolicy, load_pth_policy

from .conftest import POLICIES
from .factsbuild import SITE, FakeEnv, sha

SETUPTOOLS_PTH = b"import os; __import__('_distutils_hack').add_shim(); \n"
POLICY = PthPolicy(
    (AllowedPth("distutils-precedence.pth", "setuptools", sha(SETUPTOOLS_PTH), "test"),), ()
)
STEALER = b"import base64; exec(base64.b64decode('cHJpbnQoMSk='))\n"


def by_subject(results: list, name: str):  # type: ignore[no-untyped-def]
    return next(r for r in results if r.subject == f"{SITE}/{name}")


def test_an_allowlisted_pth_owned_by_its_distribution_passes() -> None:
    env = FakeEnv().install("setuptools", "84.2.1", {"distutils-precedence.pth": SETUPTOOLS_PTH})
    assert by_subject(pth.run(env.facts(), POLICY), "distutils-precedence.pth").passed


def test_an_unowned_executing_pth_is_a_critical_finding_naming_its_markers() -> None:
    env = FakeEnv().drop("evil_init.pth", STEALER)
    result = by_subject(pth.run(env.facts(), POLICY), "evil_init.pth")
    assert result.status is Status.FINDING
    assert result.severity is Severity.CRITICAL
    assert "owner none" in result.reason
    assert "base64" in result.reason and "exec" in result.reason


def test_a_pth_listed_in_its_own_wheels_record_is_still_a_finding() -> None:
    env = FakeEnv().install("litellm", "1.82.8", {"litellm_init.pth": STEALER})
    result = by_subject(pth.run(env.facts(), POLICY), "litellm_init.pth")
    assert result.status is Status.FINDING
    assert "owner litellm" in result.reason


def test_an_allowlisted_name_with_other_content_is_a_finding() -> None:
    env = FakeEnv().install("setuptools", "84.2.1", {"distutils-precedence.pth": STEALER})
    result = by_subject(pth.run(env.facts(), POLICY), "distutils-precedence.pth")
    assert result.status is Status.FINDING
    assert "different content" in result.reason


def test_an_allowlisted_file_from_the_wrong_owner_is_a_finding() -> None:
    env = FakeEnv().install("notsetuptools", "1.0", {"distutils-precedence.pth": SETUPTOOLS_PTH})
    assert not by_subject(pth.run(env.facts(), POLICY), "distutils-precedence.pth").passed


def test_a_path_only_pth_not_on_the_allowlist_is_a_medium_finding() -> None:
    env = FakeEnv().drop("extra.pth", b"/opt/somewhere\n")
    result = by_subject(pth.run(env.facts(), POLICY), "extra.pth")
    assert result.status is Status.FINDING
    assert result.severity is Severity.MEDIUM
    assert "adds paths only" in result.reason


def test_hidden_and_look_alike_pth_names_are_reported() -> None:
    env = FakeEnv().drop(".hidden.pth", b"import os\n").drop("distutils_precedence.pth", b"x\n")
    env.drop("distutils-precedenc\u0435.pth", b"x\n")  # Cyrillic e
    results = pth.run(env.facts(), POLICY)
    assert "hidden" in by_subject(results, ".hidden.pth").reason
    assert "looks like" in by_subject(results, "distutils_precedence.pth").reason
    assert "non-ASCII" in by_subject(results, "distutils-precedenc\u0435.pth").reason


def test_only_lines_starting_with_import_execute() -> None:
    assert pth.executes("import os\n")
    assert pth.executes("/a\nimport\tos\n")
    assert not pth.executes("# import os\n/a/import os\n  import os\n")


def test_a_sitecustomize_not_on_the_allowlist_is_critical() -> None:
    from verify.facts import Hook

    env = FakeEnv()
    env.hooks.append(Hook("sitecustomize", f"{SITE}/sitecustomize.py", sha(b"print(1)")))
    result = by_subject(pth.run(env.facts(), POLICY), "sitecustomize.py")
    assert result.status is Status.FINDING and result.severity is Severity.CRITICAL


def test_the_shipped_allowlist_loads_and_covers_setuptools_and_the_editable_install() -> None:
    policy = load_pth_policy(POLICIES)
    names = {a.name: a.owner for a in policy.pth}
    assert names == {
        "distutils-precedence.pth": "setuptools",
        "__editable__.sealgate-0.1.0.pth": "sealgate",
    }
    assert policy.hooks == ()
