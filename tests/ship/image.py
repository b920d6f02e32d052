"""The image's final stage, rebuilt in a directory and run, for a machine with no container engine.

What the Dockerfile says is read from the Dockerfile itself (the final stage's COPY, ENV, USER,
RUN, ENTRYPOINT and CMD), so the rebuilt tree follows it:

- **build stage**: ``docker/install.sh`` runs as the build stage runs it (``SEALGATE_VENV=/opt/
  sealgate``, the source tree of the build context, the release key from ``/run/secrets/
  manifest_key`` when given, here none), as root, in a mount namespace of its own in which
  ``/opt/sealgate`` is a directory of the test's (``build/opt/sealgate``): the venv is made at the
  path it has in the image, so every path it records is the image's.
- **final stage**: a second directory (``final/``) receives exactly what the final stage's
  ``COPY`` instructions put into the image, and nothing else: directories, regular files and
  symbolic links only (anything else, a device or a fifo, is refused), under a hard cap on the
  bytes copied. Files are owned by root, as the image's are.
- **the base image** (``python:3.11-slim-bookworm``: Debian bookworm's libraries and a CPython
  3.11 in ``/usr/local``) is stood in for by this machine's own root filesystem, never copied,
  with the tests' own CPython bound on ``/usr/local`` (``base_image_mounts``): the final tree is
  laid over it, read-only, with overlayfs. On CI's 3.12 and 3.13 jobs that CPython is 3.12 or
  3.13, and the image's ``python3.11`` paths are read as that version's.

Running it (``namespace_script``): as root, in a new mount namespace (the host's mounts are not
touched), ``/opt``, ``/etc`` and ``/var/lib`` become read-only overlays of the final tree on the
host's directories; ``/var/lib/sealgate`` (the image's VOLUME) is a fresh writable directory
owned by the image's UID, mode 0700; the admin credential is a file under ``/run/secrets`` (as a
mounted Secret would be, mode 0440, group = the image's GID); then the root mount itself is made
read-only (``docker run --read-only``): every path but the volume, ``/dev``, ``/dev/shm``,
``/proc`` and ``/sys`` refuses writes, even root's. The process then drops to the Dockerfile's
``USER`` with ``setpriv`` (no supplementary group, no capability in any set, ``no_new_privs``),
with exactly the image's environment (``env -i``), in ``/``, and ``exec``s the ENTRYPOINT and
CMD, so the shell's pid (written to a file) becomes the gateway's. Apart from the image's
environment, only what ``docker run -e`` or the runtime would add is set: the admin credential's
file, ``SEALGATE_PORT`` (the machine is shared and the image's 4000 may be taken) and ``HOME=/``.

Not reproduced: the base image's own files (its interpreter is the tests', and the pip and
setuptools the final stage deletes from it are still in the stand-in, outside the venv, which
never sees them), the network and PID namespaces, cgroup limits and seccomp profile a container
runtime adds, and the HEALTHCHECK (the tests call /health/live themselves).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.ship.dockerfile_rules import Instruction, instructions
from tests.support.installs import VERSION

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
# The final tree is about 150 MB (the venv: the locked wheels installed, and their bytecode);
# a copy that grows past this is copying something the image does not hold.
MAX_TREE_BYTES = 400 * 1024 * 1024
# python:3.11-slim-bookworm's own environment, which the final stage's ENV extends.
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
ADMIN_KEY_FILE = "/run/secrets/sealgate-admin-key"
# The interpreter that stands in for the base image's /usr/local (see base_image_mounts).
BASE_PREFIX = Path(sys.base_prefix)
# The top-level directories the final stage writes into: each is overlaid on the host's.
OVERLAID = ("opt", "etc", "var/lib")


class TreeTooLarge(Exception):
    """The final tree would pass MAX_TREE_BYTES."""


def final_stage() -> list[Instruction]:
    """The instructions after ``FROM ... AS final``."""
    items = instructions(DOCKERFILE.read_text())
    (start,) = [
        i for i, item in enumerate(items) if item.keyword == "FROM" and item.args.endswith(" final")
    ]
    return items[start + 1 :]


def _one(keyword: str) -> str:
    (found,) = [item.args for item in final_stage() if item.keyword == keyword]
    return found


def user() -> tuple[int, int]:
    uid, gid = _one("USER").split(":")
    return int(uid), int(gid)


def _on_this_python(words: list[str]) -> list[str]:
    """The image's paths name python3.11 (its base image's); CI also runs the tests on 3.12 and
    3.13, whose venv has lib/python3.12 or lib/python3.13 instead."""
    return [word.replace("python3.11", VERSION) for word in words]


def command() -> list[str]:
    """ENTRYPOINT + CMD, as the container runtime runs them."""
    words: list[str] = json.loads(_one("ENTRYPOINT")) + json.loads(_one("CMD"))
    return _on_this_python(words)


def verify_step() -> list[str]:
    """The final stage's check of the image as it ships (its one exec-form RUN)."""
    (run,) = [item.args for item in final_stage() if item.keyword == "RUN" and item.args[:1] == "["]
    words: list[str] = json.loads(run)
    return _on_this_python(words)


def environment() -> dict[str, str]:
    """The base image's environment with the final stage's ENV applied (``$PATH`` expanded)."""
    env = dict(BASE_ENV)
    for item in final_stage():
        if item.keyword != "ENV":
            continue
        for pair in shlex.split(item.args):
            name, _, value = pair.partition("=")
            env[name] = value.replace("$PATH", env["PATH"])
    return env


@dataclass(frozen=True)
class Copy:
    source: str
    dest: str
    from_build: bool


def copies() -> list[Copy]:
    found = []
    for item in final_stage():
        if item.keyword != "COPY":
            continue
        words = item.args.split()
        flags = [w for w in words if w.startswith("--")]
        source, dest = [w for w in words if not w.startswith("--")]
        assert set(flags) <= {"--from=build", "--chown=0:0"}, flags
        found.append(Copy(source, dest, "--from=build" in flags))
    return found


class Budget:
    """The bytes a copy may still write."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.copied = 0

    def take(self, size: int, path: Path) -> None:
        if size > self.left:
            raise TreeTooLarge(f"copying {path} would pass {MAX_TREE_BYTES} bytes")
        self.left -= size
        self.copied += size


def copy_entry(source: Path, dest: Path, budget: Budget) -> None:
    """``source`` to ``dest``: a directory (recursively), a regular file or a symbolic link,
    with its mode; never anything else, and never past the budget."""
    info = source.lstat()
    if stat.S_ISLNK(info.st_mode):
        dest.symlink_to(os.readlink(source))
    elif stat.S_ISREG(info.st_mode):
        budget.take(info.st_size, source)
        shutil.copyfile(source, dest, follow_symlinks=False)
        os.chmod(dest, stat.S_IMODE(info.st_mode))
    elif stat.S_ISDIR(info.st_mode):
        dest.mkdir()
        for child in sorted(source.iterdir()):
            copy_entry(child, dest / child.name, budget)
        os.chmod(dest, stat.S_IMODE(info.st_mode))
    else:
        raise AssertionError(f"{source} is neither a directory, a regular file nor a link")


def assemble(build_root: Path, context: Path, final: Path) -> int:
    """The final stage's tree in ``final``: what its COPY instructions copy, from the build
    stage's root or the build context. The bytes copied."""
    budget = Budget(MAX_TREE_BYTES)
    for step in copies():
        origin = (build_root if step.from_build else context) / step.source.strip("/")
        dest = final / step.dest.strip("/")
        if step.dest.endswith("/") and not origin.is_dir():
            dest = dest / origin.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        copy_entry(origin, dest, budget)
    # The final stage's RUN makes the volume's directory: owned by the image's user, mode 0700.
    (final / "var" / "lib" / "sealgate").mkdir(parents=True, mode=0o700)
    return budget.copied


def privileged() -> list[str]:
    """The prefix that runs a command as root: none when the tests run as root, else sudo
    without a password (as on CI's runners)."""
    return [] if os.geteuid() == 0 else ["sudo", "-n", "--"]


def root(*words: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*privileged(), *words], capture_output=True, text=True, timeout=timeout, check=False
    )


def base_image_mounts(held: Path) -> list[str]:
    """Shell lines that put the stand-in for the base image's interpreter where the base image
    has its own: ``BASE_PREFIX`` (the tests' CPython, a source build as the official image's
    is) bound read-only on ``/usr/local``. Its libpython is found through the absolute
    RUNPATH of its build, so that path must stay reachable by the image's UID: when a directory
    above it is closed to others (``/root`` for pyenv), that directory is replaced, in the
    namespace only, by a read-only tmpfs holding just the prefix (the original reached through
    ``held``, an empty directory of the caller's)."""
    q = shlex.quote
    lines = [
        f"mount --bind {q(str(BASE_PREFIX))} /usr/local",
        "mount -o remount,bind,ro /usr/local",
    ]
    closed = [a for a in reversed(BASE_PREFIX.parents) if not a.stat().st_mode & stat.S_IXOTH]
    if closed:
        top = closed[0]
        inner = top / BASE_PREFIX.relative_to(top)
        original = held / BASE_PREFIX.relative_to(top)
        lines += [
            f"mount --bind {q(str(top))} {q(str(held))}",
            f"mount -t tmpfs -o mode=0755,size=1m tmpfs {q(str(top))}",
            f"mkdir -p {q(str(inner))}",
            f"mount --bind {q(str(original))} {q(str(inner))}",
            f"mount -o remount,bind,ro {q(str(inner))}",
            f"mount -o remount,ro {q(str(top))}",
        ]
    return lines


def drop_privileges() -> list[str]:
    """setpriv to the Dockerfile's USER: no supplementary group, no capability, no_new_privs."""
    uid, gid = user()
    return [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--no-new-privs",
        "--inh-caps=-all",
        "--bounding-set=-all",
    ]


def overlay(layers: list[Path], target: str) -> str:
    """A read-only overlay (no upper directory) of ``layers``, uppermost first, on ``target``'s
    own directory, mounted on ``target``."""
    lower = ":".join([*map(str, layers), target])
    return f"mount -t overlay overlay -o {shlex.quote('lowerdir=' + lower)} {target}"


def build_script(build_root: Path, context: Path, held: Path) -> str:
    """The build stage's install step, in a mount namespace where /opt/sealgate is ours and the
    base image's interpreter is on /usr/local (``python3`` on the base image's PATH)."""
    step = [
        "env",
        f"PATH={BASE_ENV['PATH']}",
        "SEALGATE_VENV=/opt/sealgate",
        f"SEALGATE_SRC={context}",
        "PYTHON=python3",
        "SEALGATE_MANIFEST_KEY_FILE=/run/secrets/manifest_key",  # absent: an install key
        str(context / "docker" / "install.sh"),
    ]
    return "\n".join(
        [
            "set -eu",
            *base_image_mounts(held),
            overlay([build_root / "opt"], "/opt"),
            f"mount --bind {shlex.quote(str(build_root / 'opt' / 'sealgate'))} /opt/sealgate",
            "exec " + shlex.join(step),
        ]
    )


def namespace_script(
    layers: list[Path],
    held: Path,
    data: Path,
    secrets: Path,
    argv: list[str],
    env: dict[str, str],
    as_user: bool,
    pid_file: Path,
) -> str:
    """The final tree (``layers``, uppermost first: the final tree last) laid read-only over
    this machine, as described above, then ``argv``; the pid that becomes it is written to
    ``pid_file`` (under sudo, the test's child is sudo, not the gateway)."""
    q = shlex.quote
    lines = ["set -eu", f"echo $$ > {q(str(pid_file))}", *base_image_mounts(held)]
    for top in OVERLAID:
        lines.append(overlay([layer / top for layer in layers], f"/{top}"))
    lines.append(f"mount --bind {q(str(data))} /var/lib/sealgate")
    lines.append(overlay([secrets / "run"], "/run"))
    lines.append("mount -o remount,bind,ro /")
    lines.append("cd /")
    drop = drop_privileges() if as_user else []
    variables = [f"{name}={value}" for name, value in env.items()]
    lines.append("exec " + shlex.join([*drop, "env", "-i", *variables, *argv]))
    return "\n".join(lines)


def in_namespace(script: str) -> list[str]:
    return [*privileged(), "unshare", "--mount", "--propagation", "private", "sh", "-c", script]
