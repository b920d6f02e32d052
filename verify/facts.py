"""Run the probe in the target interpreter and turn its JSON into typed, frozen facts.

``gather(target_python)`` is the only I/O here: one ``<target> -I -S -c <probe>`` subprocess.
Everything downstream (``verify.pth``, ``verify.record``, ``verify.lock``) is a pure function
of ``EnvFacts``, so tests can build facts by hand.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verify.findings import VerifyError

PROBE_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class PthFile:
    dir: str
    name: str
    content: str | None
    sha256: str | None

    @property
    def path(self) -> str:
        return f"{self.dir}/{self.name}"


@dataclass(frozen=True)
class Hook:
    module: str
    path: str
    sha256: str | None


@dataclass(frozen=True)
class Dist:
    dir: str
    dist_info: str
    name: str | None
    version: str | None
    record: str | None


@dataclass(frozen=True)
class EnvFacts:
    executable: str
    prefix: str
    site_dirs: tuple[str, ...]
    markers: dict[str, str]
    pth: tuple[PthFile, ...]
    hooks: tuple[Hook, ...]
    dists: tuple[Dist, ...]
    files: dict[str, str | None]
    """Absolute path -> sha256 hex, or a ``stat:`` stamp in stat-only runs (None: not a regular
    file; "": bytecode no RECORD hash covers, not hashed)."""


def probe_source() -> str:
    return Path(__file__).with_name("probe.py").read_text(encoding="utf-8")


def gather(target_python: str, stat_only: bool = False) -> EnvFacts:
    """Ask ``target_python`` (isolated, no site) for its facts. Raises VerifyError if it cannot.

    ``stat_only``: ``files`` holds stat stamps (size, mtime, ctime, inode) instead of sha256
    digests: the cheap form for the periodic re-check, comparable only with another stat run.
    """
    try:
        done = subprocess.run(  # noqa: S603 - the target interpreter is the point
            [target_python, "-I", "-S", "-c", probe_source(), *(["--stat"] if stat_only else [])],
            capture_output=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            check=False,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VerifyError(f"cannot run target interpreter {target_python}: {exc}") from exc
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise VerifyError(f"probe failed in {target_python} (exit {done.returncode}): {tail[0]}")
    try:
        raw = json.loads(done.stdout)
    except ValueError as exc:
        raise VerifyError(f"probe in {target_python} printed no JSON: {exc}") from exc
    return from_json(raw)


def from_json(raw: dict[str, Any]) -> EnvFacts:
    return EnvFacts(
        executable=str(raw["executable"]),
        prefix=str(raw["prefix"]),
        site_dirs=tuple(raw["site_dirs"]),
        markers={str(k): str(v) for k, v in raw["markers"].items()},
        pth=tuple(PthFile(p["dir"], p["name"], p["content"], p["sha256"]) for p in raw["pth"]),
        hooks=tuple(Hook(h["module"], h["path"], h["sha256"]) for h in raw["hooks"]),
        dists=tuple(
            Dist(d["dir"], d["dist_info"], d["name"], d["version"], d["record"])
            for d in raw["dists"]
        ),
        files=dict(raw["files"]),
    )
