"""The image built and run without a container engine: the build stage's install, the final
stage's tree assembled from its COPY instructions, its own check run on that tree, and the
gateway served from it as the image's user, with the image's entrypoint and environment, on a
read-only root (tests/ship/image.py says exactly what is reproduced and what is not). It starts,
passes its start-up integrity check, answers the quickstart, and refuses to start on a tampered
file.

Needs root (a mount namespace, overlays, a UID of the image's): the tests run as root here, and
through ``sudo -n`` on CI's runners.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import stat
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from tests.ship import image
from tests.support.gateway_process import free_port
from tests.support.installs import VERSION, source_tree

pytestmark = pytest.mark.slow

MODEL = "mock-gpt"  # the bundled mock model of docker/config.yaml
STARTUP_SECONDS = 120.0
VENV = "/opt/sealgate"


@dataclass(frozen=True)
class Built:
    work: Path
    final: Path
    copied: int
    held: Path
    admin_key: str
    secrets: Path

    def data_dir(self, name: str) -> Path:
        """A fresh volume for one run: owned by the image's user, mode 0700 (the final stage's
        RUN makes /var/lib/sealgate so)."""
        uid, gid = image.user()
        path = self.work / "volumes" / name
        path.mkdir(parents=True, mode=0o700)
        path.chmod(0o700)
        must(image.root("chown", f"{uid}:{gid}", str(path)))
        return path


def must(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    work = tmp_path_factory.mktemp("image")
    context = source_tree(work / "context")  # the build context
    build_root = work / "build"
    (build_root / "opt" / "sealgate").mkdir(parents=True)
    held = work / "held"
    held.mkdir(mode=0o700)
    built = subprocess.run(
        image.in_namespace(image.build_script(build_root, context, held)),
        capture_output=True,
        text=True,
        timeout=900,
    )
    try:
        must(built)
        final = work / "final"
        copied = image.assemble(build_root, context, final)
        uid, gid = image.user()
        must(image.root("chown", "-R", "0:0", str(final)))
        must(image.root("chown", f"{uid}:{gid}", str(final / "var" / "lib" / "sealgate")))
        # The admin credential as a mounted Secret: root's, readable by the image's group only.
        admin_key = "sga-" + secrets.token_urlsafe(32)
        mounted = work / "secrets"
        key_file = mounted / image.ADMIN_KEY_FILE.strip("/")
        key_file.parent.mkdir(parents=True)
        key_file.write_text(admin_key + "\n")
        key_file.chmod(0o440)
        must(image.root("chown", f"0:{gid}", str(key_file)))
        yield Built(work, final, copied, held, admin_key, mounted)
    finally:
        image.root("rm", "-rf", "--one-file-system", str(work))


def run_in_image(
    built: Built,
    argv: list[str],
    data: Path,
    env: dict[str, str] | None = None,
    as_user: bool = True,
    layers: list[Path] | None = None,
) -> list[str]:
    script = image.namespace_script(
        [*(layers or []), built.final],
        built.held,
        data,
        built.secrets,
        argv,
        env if env is not None else image.environment(),
        as_user,
        built.work / f"{data.name}.pid",
    )
    return image.in_namespace(script)


def serve_env(port: int) -> dict[str, str]:
    """The image's environment, with what `docker run -e` (or the Deployment) adds: the
    credential as a mounted file, and a free port on this shared machine. HOME is what the
    runtime sets for a user /etc/passwd does not name."""
    return image.environment() | {
        "SEALGATE_PORT": str(port),
        "SEALGATE_ADMIN_KEY_FILE": image.ADMIN_KEY_FILE,
        "HOME": "/",
    }


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    data: Path
    pid_file: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def pid(self) -> int:
        """The gateway's pid (each step of the namespace script exec'd the next)."""
        return int(self.pid_file.read_text())


def wait_live(running: Running) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise AssertionError(running.log_text()[-4000:])
        try:
            if httpx.get(running.url + "/health/live", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the image did not start in {STARTUP_SECONDS}s:\n{running.log_text()}")


@pytest.fixture(scope="module")
def gateway(built: Built) -> Iterator[Running]:
    port = free_port()
    data = built.data_dir("serve")
    log = built.work / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            run_in_image(built, image.command(), data, serve_env(port)),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    running = Running(process, f"http://127.0.0.1:{port}", log, data, built.work / "serve.pid")
    try:
        wait_live(running)
        yield running
    finally:
        if process.poll() is None:
            process.terminate()  # the gateway itself, or sudo, which passes SIGTERM on
            process.wait(timeout=30)


def test_the_final_tree_holds_exactly_what_the_final_stage_copies_and_no_installer(
    built: Built,
) -> None:
    final = built.final
    assert sorted(p.name for p in final.iterdir()) == ["etc", "opt", "var"]
    assert [p.name for p in (final / "opt").iterdir()] == ["sealgate"]
    assert sorted(p.name for p in (final / "etc" / "sealgate").iterdir()) == [
        "config.yaml",
        "policies",
        "requirements.lock",
    ]
    venv = final / "opt" / "sealgate"
    assert not list(venv.glob("bin/pip*"))
    assert not list(venv.rglob("pip/__init__.py")) and not list(venv.rglob("setuptools"))
    assert (venv / "lib" / "sealgate-manifest.json").is_file()
    # Root's files, directories and links only; the manifest's venv path is the image's.
    for path in final.rglob("*"):
        info = path.lstat()
        assert (
            stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)
        )
        if path != final / "var" / "lib" / "sealgate":
            assert (info.st_uid, info.st_gid) == (0, 0), path
            assert stat.S_ISLNK(info.st_mode) or info.st_mode & stat.S_IROTH, path
    config = (venv / "pyvenv.cfg").read_text()
    assert "home = /usr/local/bin\n" in config  # the base image's interpreter
    assert config.rstrip().endswith(f"-m venv --without-pip {VENV}")
    assert (venv / "bin" / "sealgate").read_text().startswith(f"#!{VENV}/bin/python")
    assert 0 < built.copied < image.MAX_TREE_BYTES


def test_the_copy_refuses_a_device_or_fifo_and_stops_at_its_byte_cap(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(AssertionError, match="neither a directory, a regular file nor a link"):
        image.copy_entry(fifo, tmp_path / "copied-fifo", image.Budget(1024))
    big = tmp_path / "tree"
    big.mkdir()
    (big / "a").write_bytes(b"x" * 600)
    (big / "b").write_bytes(b"x" * 600)
    with pytest.raises(image.TreeTooLarge):
        image.copy_entry(big, tmp_path / "copied-tree", image.Budget(1000))


def test_the_final_stages_own_check_passes_on_the_tree_as_it_ships(built: Built) -> None:
    """The final stage's RUN (as root, before USER): every file against the signed manifest,
    no start-up hook, exactly the runtime lock."""
    done = subprocess.run(
        run_in_image(built, image.verify_step(), built.data_dir("verify"), as_user=False),
        capture_output=True,
        text=True,
        timeout=300,
    )
    must(done)


def test_the_image_serves_as_its_user_with_no_capability_and_a_clean_bound_integrity_check(
    gateway: Running,
) -> None:
    uid, gid = image.user()
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{gateway.pid}/status").read_text().splitlines()
    )
    assert status["Uid"].split() == [str(uid)] * 4
    assert status["Gid"].split() == [str(gid)] * 4
    assert status["Groups"].strip() == ""
    for capabilities in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[capabilities], 16) == 0, capabilities
    assert status["NoNewPrivs"].strip() == "1"
    cmdline = Path(f"/proc/{gateway.pid}/cmdline").read_bytes().split(b"\0")[:-1]
    assert [word.decode() for word in cmdline] == image.command()
    ready = httpx.get(gateway.url + "/health/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert '"msg": "integrity self-check clean"' in gateway.log_text()  # before the import
    integrity = ready.json()["checks"]["integrity"]
    assert integrity | {"ok": True, "mode": "enforce", "clean": True, "bound": True} == integrity


def test_the_image_answers_the_quickstart_with_a_virtual_key_on_the_mock_model(
    gateway: Running, built: Built
) -> None:
    made = httpx.post(
        gateway.url + "/admin/keys",
        headers={"Authorization": f"Bearer {built.admin_key}"},
        json={"models": [MODEL]},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=made.json()["key"], max_retries=0)
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}]
    )
    assert reply.model == MODEL and reply.choices[0].message.content
    assert built.admin_key not in gateway.log_text()
    assert made.json()["key"] not in gateway.log_text()
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=gateway.url + "/v1", api_key="sk-sg-not-a-key", max_retries=0
        ).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hello"}])
    # The gateway's state went to the volume, written by the image's user (the volume is
    # closed to anyone else, the test included when it is not root).
    owner = image.root("stat", "-c", "%u %F", str(gateway.data / "sealgate.db"))
    assert owner.stdout.split(maxsplit=1) == [str(image.user()[0]), "regular file\n"]


def test_the_images_policy_check_and_verify_commands_find_its_policies_and_lock_unaided(
    built: Built,
) -> None:
    """`docker run IMAGE policy check` and `docker run IMAGE verify env`, no argument: the
    image's ENV names /etc/sealgate's policies and lock (policies/ beside the package, the
    default elsewhere, is not in the image)."""
    entrypoint = image.command()[:-1]  # the CMD ("serve") replaced, as `docker run IMAGE ...`
    env = image.environment()
    for argv in (["policy", "check"], ["verify", "env"]):
        done = subprocess.run(
            run_in_image(built, [*entrypoint, *argv], built.data_dir("-".join(argv)), env),
            capture_output=True,
            text=True,
            timeout=300,
        )
        must(done)
    unaided = {k: v for k, v in env.items() if not k.startswith("SEALGATE_VERIFY_")}
    done = subprocess.run(
        run_in_image(built, [*entrypoint, "policy", "check"], built.data_dir("unaided"), unaided),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert "site-packages/policies: (directory): is not a directory" in done.stdout


PROBE = """
import errno, json, os, sys
found = {}
for path in sys.argv[1:]:
    try:
        with open(os.path.join(path, ".probe"), "x"):
            pass
        os.unlink(os.path.join(path, ".probe"))
        found[path] = "written"
    except OSError as exc:
        found[path] = errno.errorcode[exc.errno]
print(json.dumps(found))
"""
READ_ONLY = ("/", "/opt/sealgate", "/opt/sealgate/lib", "/etc/sealgate", "/etc", "/tmp", "/var/tmp")


def test_only_the_volume_is_writable_even_for_root(built: Built) -> None:
    """Read-only by mount, not by permission: root is refused too (EROFS); the image's user
    writes only its volume."""
    data = built.data_dir("probe")
    for as_user in (False, True):
        argv = ["/usr/local/bin/python3", "-I", "-S", "-c", PROBE, *READ_ONLY, "/var/lib/sealgate"]
        done = subprocess.run(
            run_in_image(built, argv, data, as_user=as_user),
            capture_output=True,
            text=True,
            timeout=60,
        )
        must(done)
        found = json.loads(done.stdout)
        assert found.pop("/var/lib/sealgate") == "written"
        assert found == {path: errno.errorcode[errno.EROFS] for path in READ_ONLY}, as_user


def test_a_tampered_file_fails_the_check_and_the_image_refuses_to_start(built: Built) -> None:
    """The counter-example: one byte added to an installed module (a layer over the tree, as a
    writable layer or a patched image would hold it)."""
    serve = Path(VENV.strip("/")) / "lib" / VERSION / "site-packages" / "gateway" / "serve.py"
    layer = built.work / "tampered"
    for top in image.OVERLAID:
        (layer / top).mkdir(parents=True, exist_ok=True)
    (layer / serve).parent.mkdir(parents=True)
    (layer / serve).write_bytes((built.final / serve).read_bytes() + b"\n")
    checked = subprocess.run(
        run_in_image(
            built,
            image.verify_step(),
            built.data_dir("tampered-verify"),
            as_user=False,
            layers=[layer],
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode != 0
    assert "gateway/serve.py" in checked.stdout + checked.stderr
    port = free_port()
    started = subprocess.run(
        run_in_image(
            built,
            image.command(),
            built.data_dir("tampered-serve"),
            serve_env(port),
            layers=[layer],
        ),
        capture_output=True,
        text=True,
        timeout=STARTUP_SECONDS,
    )
    assert started.returncode != 0
    assert "gateway/serve.py" in started.stderr
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2)
