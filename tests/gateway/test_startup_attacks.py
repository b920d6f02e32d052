"""Issue 11: start-up integrity that the payload cannot outrun, attack by attack.

Each test takes a copy of Sealgate installed the production way (docker/install.sh with the
real runtime lock, once per session) and plants one attack whose payload writes a marker file.
Then ``serve`` is started the three supported ways (the ``sealgate`` command, ``python -m
gateway``, the image's ENTRYPOINT + CMD): each must exit 1 with a message naming the file, and
the marker must never have been written. Where it matters, the test also proves the payload is
real (a start that processes the file does run it) and that checking the environment from
inside gives the verdict another interpreter gives.

Attacks from a dependency release (a ``.pth`` in its own RECORD, a ``sitecustomize``, a ``.pth``
that patches the verifier, one that removes itself while the check runs) are locked and bound
the way the build would bind them: the manifest does not save us there, the layout does (the
private library is no site directory, so nothing in it runs) and the hook check names them.
RECORD rewrites, another release under a locked version and poisoned bytecode are changes
after the build: the signed manifest names them before anything is imported.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import marshal
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.installs import Installed, copy, image_config, start_commands
from tests.verify.wheels import build_wheel, sha256_file
from verify import manifest

pytestmark = pytest.mark.slow
ADMIN_KEY = "sga-" + "a" * 40


def payload(marker: Path) -> str:
    return f"import pathlib; pathlib.Path({str(marker)!r}).write_text('pwned')"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_env(config: Path, data: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEALGATE_", "PYTHON"))}
    return env | {
        "SEALGATE_CONFIG": str(config),
        "SEALGATE_DATA_DIR": str(data),
        "SEALGATE_HOST": "127.0.0.1",
        "SEALGATE_PORT": str(port),
        "SEALGATE_ADMIN_KEY": ADMIN_KEY,
    }


def assert_every_start_refuses(
    target: Installed,
    tmp: Path,
    named: list[Path],
    marker: Path,
    lock: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> None:
    config = image_config(target, tmp, lock)
    for how, command in start_commands(target).items():
        done = subprocess.run(
            command,
            env=serve_env(config, tmp / "data", free_port()) | (extra_env or {}),
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 1, f"{how}: exit {done.returncode}\n{done.stderr[-3000:]}"
        assert "refusing to start" in done.stderr, how
        for path in named:
            assert str(path) in done.stderr, f"{how} does not name {path}:\n{done.stderr[-3000:]}"
        assert not marker.exists(), f"the payload ran when the gateway was started by {how}"


def assert_inside_and_outside_agree(
    target: Installed, named: list[Path], lock: Path | None = None
) -> None:
    """`sealgate verify env` inside the environment, and the verifier of another interpreter
    pointed at it: both not clean, both naming the file."""
    args = ["--lock", str(lock or target.src / "requirements.lock")]
    args += ["--policies", str(target.src / "policies")]
    inside = subprocess.run(
        [str(target.venv / "bin" / "sealgate"), "verify", "env", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    outside = subprocess.run(
        [sys.executable, "-m", "verify", "env", "--target-python", str(target.python), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (inside.returncode, outside.returncode) == (1, 1), inside.stderr + outside.stderr
    for path in named:
        assert str(path) in inside.stdout and str(path) in outside.stdout, path


def pins(*wheels: Path) -> str:
    return "".join(
        f"{w.name.split('-')[0]}=={w.name.split('-')[1]} \\\n    --hash=sha256:{sha256_file(w)}\n"
        for w in wheels
    )


def lock_with(target: Installed, tmp: Path, *wheels: Path) -> Path:
    """The runtime lock plus pins of these wheels: a release we reviewed (badly) and locked."""
    lock = tmp / "locked-release.lock"
    lock.write_text((target.src / "requirements.lock").read_text() + pins(*wheels))
    return lock


def install_locked_release(target: Installed, tmp: Path, wheel: Path) -> Path:
    """What the build does with a locked release: install it into the private library, compile
    it, bind and sign the manifest from the wheelhouse. Returns the lock that pins it."""
    lock = lock_with(target, tmp, wheel)
    house = tmp / "wheelhouse"
    house.mkdir()
    for locked in target.wheelhouse.glob("*.whl"):
        (house / locked.name).symlink_to(locked)
    shutil.copy2(wheel, house / wheel.name)
    pin = tmp / "pin.lock"
    pin.write_text(pins(wheel))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(target.python),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--require-hashes",
            "--no-deps",
            "--no-index",
            "--no-compile",
            "--find-links",
            str(house),
            "--target",
            str(target.deps),
            "-r",
            str(pin),
        ],
        check=True,
    )
    shutil.rmtree(target.deps / "bin", ignore_errors=True)
    new = [target.deps / n for n in _top_level(wheel)]
    compile_all = ["-m", "compileall", "-q", "-f", "--invalidation-mode", "checked-hash"]
    subprocess.run(
        [str(target.python), "-I", "-S", *compile_all, *map(str, new)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    signed = subprocess.run(
        target.launcher(
            "verify",
            "manifest",
            "create",
            "--wheelhouse",
            str(house),
            "--lock",
            str(lock),
            "--ephemeral-key",
            "--public-key-out",
            str(target.manifest_key),
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    assert signed.returncode == 0, signed.stderr
    return lock


def _top_level(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return sorted({n.split("/")[0] for n in zf.namelist() if ".dist-info" not in n})


def rewrite_record_row(dist_info: Path, root: Path, changed: Path) -> None:
    """What an attacker does after changing an installed file: make RECORD agree."""
    data = changed.read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    rel = changed.relative_to(root).as_posix()
    record = dist_info / "RECORD"
    rows = [
        f"{rel},sha256={digest},{len(data)}" if row.startswith(rel + ",") else row
        for row in record.read_text().splitlines()
    ]
    assert any(row.startswith(rel + ",") for row in rows)
    record.write_text("\n".join(rows) + "\n")


def runs(target: Installed, code: str) -> None:
    """Run ``code`` where the private library and site-packages are importable."""
    path = f"import sys; sys.path += [{str(target.site)!r}, {str(target.deps)!r}]\n"
    subprocess.run([str(target.python), "-I", "-S", "-c", path + code], check=False)


@pytest.fixture
def target(installed: Installed, tmp_path: Path) -> Installed:
    return copy(installed, tmp_path / "copy")


# -- a malicious release of a locked dependency ---------------------------------------------


def test_a_pth_in_a_locked_dependency_s_own_record_never_runs_and_every_start_refuses(
    target: Installed, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    release = build_wheel(
        tmp_path,
        "evilpkg",
        "1.0",
        {"evilpkg/__init__.py": b"", "evilpkg_init.pth": payload(marker).encode() + b"\n"},
    )
    lock = install_locked_release(target, tmp_path, release)
    pth = target.deps / "evilpkg_init.pth"
    assert_every_start_refuses(target, tmp_path, [pth], marker, lock)
    assert_inside_and_outside_agree(target, [pth], lock)
    runs(target, f"import site; site.addsitedir({str(target.deps)!r})")
    assert marker.read_text() == "pwned"  # the payload is real: a site directory would run it


def test_a_sitecustomize_shipped_by_a_dependency_never_runs_and_every_start_refuses(
    target: Installed, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    release = build_wheel(
        tmp_path, "evilhook", "1.0", {"sitecustomize.py": payload(marker).encode() + b"\n"}
    )
    lock = install_locked_release(target, tmp_path, release)
    hook = target.deps / "sitecustomize.py"
    assert_every_start_refuses(target, tmp_path, [hook], marker, lock)
    runs(target, "import sitecustomize")
    assert marker.read_text() == "pwned"


def test_a_pth_that_patches_the_verifier_cannot_hide_itself_from_any_start(
    target: Installed, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    hide = (
        "import verify.pth as p, verify.manifest as m, verify.startup as s; "
        "p.run = lambda *a, **k: []; m.check = lambda *a, **k: []; "
        "s.bind = lambda *a, **k: []; " + payload(marker) + "\n"
    )
    release = build_wheel(
        tmp_path,
        "quietpkg",
        "1.0",
        {"quietpkg/__init__.py": b"", "quietpkg_init.pth": hide.encode()},
    )
    lock = install_locked_release(target, tmp_path, release)
    pth = target.deps / "quietpkg_init.pth"
    assert_every_start_refuses(target, tmp_path, [pth], marker, lock)
    assert_inside_and_outside_agree(target, [pth], lock)


def test_a_pth_that_removes_itself_while_the_check_runs_is_still_there_to_be_named(
    target: Installed, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    own = target.deps / "vanishpkg_init.pth"
    vanish = (
        f"import os, atexit; p = {str(own)!r}; d = open(p).read(); os.remove(p); "
        "atexit.register(lambda: open(p, 'w').write(d)); " + payload(marker) + "\n"
    )
    release = build_wheel(
        tmp_path,
        "vanishpkg",
        "1.0",
        {"vanishpkg/__init__.py": b"", "vanishpkg_init.pth": vanish.encode()},
    )
    lock = install_locked_release(target, tmp_path, release)
    assert_every_start_refuses(target, tmp_path, [own], marker, lock)
    assert own.exists()  # it never ran, so it never removed itself


# -- changes after the build: the signed manifest names them ---------------------------------


def test_a_changed_dependency_module_with_its_record_row_rewritten_is_refused(
    target: Installed, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    module = target.deps / "yaml" / "__init__.py"
    module.write_text(module.read_text() + "\n" + payload(marker) + "\n")
    rewrite_record_row(next(target.deps.glob("pyyaml-*.dist-info")), target.deps, module)
    assert_every_start_refuses(target, tmp_path, [module], marker)
    assert_inside_and_outside_agree(target, [module])
    runs(target, "import yaml")
    assert marker.read_text() == "pwned"


def test_a_changed_project_module_with_its_record_row_rewritten_is_refused(
    target: Installed, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    module = target.site / "gateway" / "config" / "__init__.py"
    module.write_text(module.read_text() + "\n" + payload(marker) + "\n")
    rewrite_record_row(target.site / "sealgate-0.1.0.dist-info", target.site, module)
    assert_every_start_refuses(target, tmp_path, [module], marker)


def test_a_changed_file_of_the_verifier_itself_is_refused_before_it_is_imported(
    target: Installed, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    # verify/pth.py judges the start-up hooks: blinding it would hide a .pth. It is imported
    # only by the check's second stage, after the first has compared it with the manifest.
    module = target.site / "verify" / "pth.py"
    module.write_text(module.read_text() + "\n" + payload(marker) + "\n")
    rewrite_record_row(target.site / "sealgate-0.1.0.dist-info", target.site, module)
    assert_every_start_refuses(target, tmp_path, [module], marker)
    assert_inside_and_outside_agree(target, [module])


def test_another_release_renamed_to_the_locked_version_is_refused(
    target: Installed, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    locked = next(target.deps.glob("annotated_doc-*.dist-info"))
    version = locked.name.split("-")[1].removesuffix(".dist-info")
    other = build_wheel(
        tmp_path,
        "annotated_doc",
        "9.9.9",
        {"annotated_doc/__init__.py": (payload(marker) + "\nDoc = str\n").encode()},
    )
    shutil.rmtree(target.deps / "annotated_doc")
    shutil.rmtree(locked)
    pip = [sys.executable, "-m", "pip", "--python", str(target.python), "install", "--quiet"]
    pip += ["--no-deps", "--no-index", "--no-compile", "--target", str(target.deps), str(other)]
    subprocess.run(pip, check=True)
    renamed = target.deps / f"annotated_doc-{version}.dist-info"
    (target.deps / "annotated_doc-9.9.9.dist-info").rename(renamed)
    metadata = renamed / "METADATA"
    metadata.write_text(metadata.read_text().replace("Version: 9.9.9", f"Version: {version}"))
    record = renamed / "RECORD"
    record.write_text(record.read_text().replace("annotated_doc-9.9.9.dist-info", renamed.name))
    rewrite_record_row(renamed, target.deps, metadata)
    shutil.rmtree(target.deps / "bin", ignore_errors=True)
    module = target.deps / "annotated_doc" / "__init__.py"
    record_only = [sys.executable, "-m", "verify", "record", "--target-python", str(target.python)]
    clean_record = subprocess.run(
        [*record_only, "--lock", str(target.src / "requirements.lock")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert str(module) not in clean_record.stdout  # RECORD agrees with the files: it is no help
    assert_every_start_refuses(target, tmp_path, [module], marker)
    assert_inside_and_outside_agree(target, [module])


def test_a_poisoned_pyc_that_python_would_load_is_refused_before_it_can_be(
    target: Installed, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    source = target.deps / "yaml" / "__init__.py"
    pyc = Path(importlib.util.cache_from_source(str(source)))
    st = source.stat()
    header = importlib.util.MAGIC_NUMBER + (0).to_bytes(4, "little")  # timestamp mode
    header += (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little") + st.st_size.to_bytes(
        4, "little"
    )
    code = compile(source.read_text() + "\n" + payload(marker) + "\n", str(source), "exec")
    pyc.write_bytes(header + marshal.dumps(code))
    assert_every_start_refuses(target, tmp_path, [pyc], marker)
    assert_inside_and_outside_agree(target, [pyc])
    runs(target, "import yaml")
    assert marker.read_text() == "pwned"  # source untouched, header matching: Python loads it


def test_poisoned_bytecode_of_the_check_s_own_modules_is_never_loaded_and_is_refused(
    target: Installed, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    # verify.facts is part of what the first stage runs on: it is imported before anything is
    # compared, so the launcher loads the project's modules from their sources then.
    source = target.site / "verify" / "facts.py"
    pyc = Path(importlib.util.cache_from_source(str(source)))
    st = source.stat()
    header = importlib.util.MAGIC_NUMBER + (0).to_bytes(4, "little")
    header += (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
    header += st.st_size.to_bytes(4, "little")
    code = compile(source.read_text() + "\n" + payload(marker) + "\n", str(source), "exec")
    pyc.write_bytes(header + marshal.dumps(code))
    assert_every_start_refuses(target, tmp_path, [pyc], marker)
    runs(target, "import verify.facts")
    assert marker.read_text() == "pwned"  # a normal import would have run it


def test_a_manifest_re_signed_in_place_is_refused_when_its_key_is_pinned_outside(
    target: Installed, tmp_path: Path
) -> None:
    """Whoever can write the venv can also re-sign its manifest with a key of their own and put
    that key's public half beside it: the limit docs/verify.md names. Pinning the public key
    outside the venv (SEALGATE_VERIFY_MANIFEST_KEY) is what stops it."""
    marker = tmp_path / "marker"
    pinned = tmp_path / "release.pub"
    shutil.copy2(target.manifest_key, pinned)
    module = target.deps / "yaml" / "__init__.py"
    module.write_text(module.read_text() + "\n" + payload(marker) + "\n")
    signed = target.venv / "lib" / "sealgate-manifest.json"
    doc = json.loads(json.loads(signed.read_text())["payload"])
    doc["files"][module.relative_to(target.venv).as_posix()][0] = sha256_file(module)
    forged = ec.generate_private_key(ec.SECP256R1())
    signed.write_bytes(
        manifest.seal(doc, lambda data: forged.sign(data, ec.ECDSA(hashes.SHA256())))
    )
    target.manifest_key.write_bytes(
        forged.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    pin = {"SEALGATE_VERIFY_MANIFEST_KEY": str(pinned)}
    assert_every_start_refuses(target, tmp_path, [signed], marker, extra_env=pin)
    # Without the pin the forgery passes: the key beside the manifest is the attacker's now.
    env_check = [str(target.venv / "bin" / "sealgate"), "verify", "env"]
    env_check += ["--lock", str(target.src / "requirements.lock")]
    inside = subprocess.run(
        [*env_check, "--policies", str(target.src / "policies")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert inside.returncode == 0, inside.stdout


# -- and the clean environment ----------------------------------------------------------------


def _ready(url: str, process: subprocess.Popen[bytes], log: Path) -> dict[str, object]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(log.read_text()[-3000:])
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return dict(json.loads(answer.read()))
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered:\n{log.read_text()[-3000:]}")


def test_the_clean_environment_starts_every_way_and_exits_0_on_sigterm(
    installed: Installed, tmp_path: Path
) -> None:
    config = image_config(installed, tmp_path)
    for how, command in start_commands(installed).items():
        port = free_port()
        log = tmp_path / f"{how}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                command,
                env=serve_env(config, tmp_path / "data", port),
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )
            try:
                ready = _ready(f"http://127.0.0.1:{port}/health/ready", process, log)
            finally:
                process.send_signal(signal.SIGTERM)
                code = process.wait(timeout=30)
        integrity = ready["checks"]["integrity"]  # type: ignore[index]
        assert integrity["clean"] is True and integrity["bound"] is True, how
        assert code == 0, f"{how}: exit {code}\n{log.read_text()[-2000:]}"
    lock, policies = installed.src / "requirements.lock", installed.src / "policies"
    verify_env = [str(installed.venv / "bin" / "sealgate"), "verify", "env", "--lock", str(lock)]
    verified = subprocess.run(
        [*verify_env, "--policies", str(policies)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout  # serving wrote nothing into the venv
