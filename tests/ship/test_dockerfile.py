"""The Dockerfile's rules, checked statically (no Docker engine here), and docker/install.sh run
for real against a throw-away venv: the same steps the image's build stage runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.ship.dockerfile_rules import check, instructions
from tests.support.installs import Installed, image_command, image_config

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()
INSTALL = (REPO / "docker" / "install.sh").read_text()
DIGEST = "sha256:" + "ab" * 32
LIB = "/usr/local/lib/python3.11"
LAUNCHER = [
    "/opt/sealgate/bin/python",
    "-I",
    "-S",
    "-B",
    "/opt/sealgate/lib/python3.11/site-packages/gateway/boot.py",
]

GOOD = f"""\
FROM python:3.11-slim@{DIGEST} AS build
RUN pip install --require-hashes -r requirements.lock
FROM python:3.11-slim@{DIGEST}
RUN rm -rf {LIB}/site-packages/pip {LIB}/site-packages/setuptools {LIB}/ensurepip
COPY --from=build /opt/sealgate /opt/sealgate
USER 10001:10001
HEALTHCHECK CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:4000/health/live')"]
"""


def rules(dockerfile: str, script: str | None = None) -> set[str]:
    return {v.rule for v in check(dockerfile, script)}


def test_the_real_dockerfile_passes_every_rule() -> None:
    assert check(DOCKERFILE, INSTALL) == []


def test_the_final_stage_verifies_the_copied_venv_against_the_shipped_lock_after_copying() -> None:
    items = instructions(DOCKERFILE)
    final = items[max(i for i, item in enumerate(items) if item.keyword == "FROM") :]
    last_copy = max(i for i, item in enumerate(final) if item.keyword == "COPY")
    runs = [json.loads(item.args) for item in final[last_copy:] if item.keyword == "RUN"]
    verify = ["verify", "env", "--lock", "/etc/sealgate/requirements.lock"]
    assert [*LAUNCHER, *verify, "--policies", "/etc/sealgate/policies"] in runs


def test_the_entrypoint_is_the_isolated_launcher_so_the_first_interpreter_checks() -> None:
    items = instructions(DOCKERFILE)
    [entrypoint] = [json.loads(i.args) for i in items if i.keyword == "ENTRYPOINT"]
    [cmd] = [json.loads(i.args) for i in items if i.keyword == "CMD"]
    assert (entrypoint, cmd) == (LAUNCHER, ["serve"])


def test_the_install_step_can_sign_with_the_release_key_from_a_build_secret() -> None:
    [build] = [i for i in instructions(DOCKERFILE) if "docker/install.sh" in i.args]
    assert build.args.startswith("--mount=type=secret,id=manifest_key ")
    assert "SEALGATE_MANIFEST_KEY_FILE=/run/secrets/manifest_key" in build.args


def test_the_minimal_good_example_passes_so_each_counter_example_isolates_one_rule() -> None:
    assert check(GOOD) == []


@pytest.mark.parametrize(
    ("counter_example", "rule"),
    [
        (GOOD.replace(f"@{DIGEST} AS build", " AS build"), "from-digest"),
        (GOOD.replace(f"slim@{DIGEST}\n", "slim:latest\n"), "from-digest"),
        ("# syntax=docker/dockerfile:1\n" + GOOD, "syntax-digest"),
        ("# check=error=true\n# syntax=docker/dockerfile:1.7\n" + GOOD, "syntax-digest"),
        (GOOD.replace("USER 10001:10001", "USER sealgate"), "user"),
        (GOOD.replace("USER 10001:10001", "USER 0"), "user"),
        (GOOD.replace("USER 10001:10001\n", ""), "user"),
        (GOOD + "ADD https://example.org/x.tar.gz /opt/\n", "remote-add"),
        (GOOD.replace("--require-hashes ", ""), "hashed-install"),
        (GOOD.replace("/health/live", "/health/ready"), "healthcheck"),
        (
            GOOD.replace("HEALTHCHECK CMD", "HEALTHCHECK CMD curl -f http://x/health/live #"),
            "healthcheck",
        ),
        (
            GOOD + "RUN python -m pip install --require-hashes -r requirements.lock\n",
            "no-installer",
        ),
        (GOOD + "RUN apt-get install -y gcc\n", "no-installer"),
        (GOOD + "RUN python -m ensurepip\n", "no-installer"),
        (GOOD.replace(f" {LIB}/ensurepip", ""), "base-installer"),
        (GOOD.replace(f" {LIB}/site-packages/pip ", " "), "base-installer"),
    ],
)
def test_each_rule_fails_on_its_counter_example(counter_example: str, rule: str) -> None:
    assert rules(counter_example) == {rule}


def test_an_install_script_with_an_unhashed_pip_install_fails_the_hashed_install_rule() -> None:
    dockerfile = GOOD.replace(
        "RUN pip install --require-hashes -r requirements.lock", "RUN docker/install.sh"
    )
    assert check(dockerfile, INSTALL) == []
    bad = INSTALL.replace("--require-hashes", "")
    assert rules(dockerfile, bad) == {"hashed-install"}


def test_a_pinned_syntax_directive_passes_and_one_below_a_comment_is_no_directive() -> None:
    assert check(f"# syntax=docker/dockerfile:1@{DIGEST}\n" + GOOD) == []
    assert check("# the image\n# syntax=docker/dockerfile:1\n" + GOOD) == []


def test_a_continued_line_is_read_as_one_instruction() -> None:
    split = GOOD.replace("pip install --require-hashes", "pip install \\\n    --require-hashes")
    assert check(split) == []


@pytest.mark.slow
def test_install_script_builds_the_install_layout_without_pip_that_serves_with_a_bound_check(
    installed: Installed, tmp_path: Path
) -> None:
    venv = installed.venv
    assert installed.site.is_dir() and installed.deps.is_dir()
    assert sorted(p.name for p in installed.site.iterdir()) == [
        "gateway",
        "sealgate-0.1.0.dist-info",
        "verify",
    ]
    everywhere = [*installed.site.iterdir(), *installed.deps.iterdir()]
    names = {p.name.split("-")[0].lower() for p in everywhere if p.name.endswith(".dist-info")}
    assert "pip" not in names and "setuptools" not in names and "fastapi" in names
    assert not list(venv.glob("bin/pip*")) and not (installed.deps / "bin").exists()
    assert not list(installed.site.glob("*.pth")) and not list(installed.deps.glob("*.pth"))
    assert not (installed.src / "build").exists() and not list(installed.src.glob("*.egg-info"))
    assert (venv / "lib" / "sealgate-manifest.json").is_file() and installed.manifest_key.is_file()
    assert b"PRIVATE" not in b"".join(p.read_bytes() for p in venv.rglob("*.pem"))
    # Every .py has its bytecode compiled at install, checked-hash (flags 0b11), in the manifest.
    pyc = next((installed.site / "gateway" / "__pycache__").glob("serve.*.pyc")).read_bytes()
    assert int.from_bytes(pyc[4:8], "little") == 0b11

    helped = subprocess.run(
        [str(venv / "bin" / "sealgate"), "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0 and "serve" in helped.stdout

    # The image's run-time layout: locks and policies outside site-packages, found through the
    # image's config; the image's own command line serves with a clean, bound check.
    config = image_config(installed, tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serve_env = {k: v for k, v in os.environ.items() if not k.startswith("SEALGATE_")}
    serve_env |= {
        "SEALGATE_CONFIG": str(config),
        "SEALGATE_DATA_DIR": str(tmp_path / "data"),
        "SEALGATE_PORT": str(port),
        "SEALGATE_HOST": "127.0.0.1",
        "SEALGATE_ADMIN_KEY": "sga-" + "t" * 40,
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            image_command(installed),
            env=serve_env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
        try:
            ready = _wait_json(f"http://127.0.0.1:{port}/health/ready", server, log)
        finally:
            server.terminate()
            assert server.wait(timeout=30) == 0
    assert ready["checks"]["integrity"] == ready["checks"]["integrity"] | {
        "ok": True,
        "mode": "enforce",
        "clean": True,
        "bound": True,
    }


def _wait_json(url: str, server: subprocess.Popen[bytes], log: Path) -> dict[str, object]:
    """Poll until the server answers (its start-up runs the integrity self-check first)."""
    for _ in range(600):
        if server.poll() is not None:
            raise AssertionError(log.read_text()[-3000:])
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return dict(json.loads(answer.read()))
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")
