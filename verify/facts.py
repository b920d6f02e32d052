"""Gather the probe's facts about an interpreter and turn them into typed, frozen facts.

``gather(target_python)`` is the only I/O here. When the target is this very interpreter and
this interpreter runs isolated with no site (the launcher, ``-I -S``), the probe runs in
process: nothing from the environment has run here, so there is nothing to hide behind. For
any other interpreter, or a process that started normally, it runs as one
``<target> -I -S -c <probe>`` subprocess, given the ``HOME``, ``PYTHONUSERBASE`` and
``PYTHONNOUSERSITE`` the target would run with, so its user site is the one a normal start of
the target would process. Everything downstream (``verify.pth``, ``verify.record``,
``verify.lock``, ``verify.manifest``) is a pure function of ``EnvFacts``, so tests can build
facts by hand.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verify import probe
from verify.findings import VerifyError

PROBE_TIMEOUT_SECONDS = 60.0
# What a normal start of the target reads from its environment to find the user site.
USER_SITE_ENV = ("HOME", "PYTHONUSERBASE", "PYTHONNOUSERSITE")


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
    file; "": bytecode outside Sealgate's layout that no RECORD hash covers, not hashed)."""
    private_dir: str | None = None
    """Sealgate's private library directory (``probe.PRIVATE_LIB``), when the layout has one."""
    cache_tag: str = ""
    pth_dirs: tuple[tuple[str, str], ...] = ()
    """(directory, the .pth whose path line adds it) for every path line of a site .pth."""
    stamps: dict[str, str | None] = field(default_factory=dict)
    """Absolute path -> stat stamp taken before the file was hashed (the watch starts here)."""

    @property
    def roots(self) -> tuple[str, ...]:
        """Every directory whose files were gathered: site directories and the private one."""
        return self.site_dirs + ((self.private_dir,) if self.private_dir else ())

    @property
    def bound_layout(self) -> bool:
        """Sealgate's install layout: dependencies in the private directory, bound by manifest."""
        return self.private_dir is not None

    @property
    def manifest_path(self) -> Path:
        return Path(self.prefix, probe.MANIFEST_FILE)

    @property
    def manifest_key_path(self) -> Path:
        return Path(self.prefix, probe.MANIFEST_KEY_FILE)


def probe_source() -> str:
    return Path(__file__).with_name("probe.py").read_text(encoding="utf-8")


_remembered: EnvFacts | None = None
_stdlib_path: list[str] | None = None


def set_stdlib_path(path: list[str]) -> None:
    """The launcher's path before it added anything (the standard library): an in-process
    probe searches for customize hooks there, as a normal start would."""
    global _stdlib_path
    _stdlib_path = list(path)


def remember(facts: EnvFacts) -> None:
    """Keep this interpreter's facts for the next in-process ``gather`` (once): the launcher
    gathered them for the first stage, and the checks that follow need the same."""
    global _remembered
    _remembered = facts


def runs_isolated() -> bool:
    """This process ran no site code (``-I -S``), so the probe may run in it."""
    return bool(sys.flags.isolated and sys.flags.no_site)


def gather(
    target_python: str,
    stat_only: bool = False,
    environ: Mapping[str, str] | None = None,
    base_path: list[str] | None = None,
    hash_all: bool = False,
) -> EnvFacts:
    """Facts about ``target_python``'s environment, gathered where none of its code ran.

    ``stat_only``: ``files`` holds stat stamps instead of sha256 digests (the cheap form, only
    comparable with another stat run). ``environ``: the environment the target runs with (for
    its user site); default this process's. ``base_path``: for the in-process run, this
    interpreter's path before the launcher added anything to it. ``hash_all``: hash bytecode
    outside Sealgate's layout too (inside it, everything is always hashed).
    """
    global _remembered
    if runs_isolated() and os.path.abspath(target_python) == os.path.abspath(sys.executable):
        kept, _remembered = _remembered, None
        if kept is not None and not stat_only:
            return kept
        return from_json(probe.collect(stat_only, base_path or _stdlib_path, hash_all))
    import subprocess  # only for another interpreter: the launcher's own check never needs it

    flags = (["--stat"] if stat_only else []) + (["--all"] if hash_all else [])
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    source = os.environ if environ is None else environ
    env.update({k: source[k] for k in USER_SITE_ENV if k in source})
    try:
        done = subprocess.run(  # noqa: S603 - the target interpreter is the point
            [target_python, "-I", "-S", "-c", probe_source(), *flags],
            capture_output=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            check=False,
            env=env,
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


def from_json(raw: Mapping[str, Any]) -> EnvFacts:
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
        private_dir=raw.get("private_dir"),
        cache_tag=str(raw.get("cache_tag", "")),
        pth_dirs=tuple((d["dir"], d["pth"]) for d in raw.get("pth_dirs", ())),
        stamps=dict(raw.get("stamps", {})),
    )
