"""Bind the installed files to the locked wheel hashes, through a wheelhouse.

A wheelhouse is the directory of wheels the environment was installed from (for example
``pip download --require-hashes --no-deps --only-binary :all: -r requirements.lock -d DIR``
at build time). For every installed distribution (the project itself aside):

1. the wheel ``<name>-<version>-*.whl`` is in the wheelhouse, and its sha256 is one of the
   lock's hashes for that pin (so the wheel is the locked release);
2. the wheel's own RECORD equals the installed RECORD: every file the wheel ships is installed
   with the wheel's hash, and no file inside the site directory is installed that the wheel
   does not ship (pip's own additions aside: INSTALLER, REQUESTED, direct_url.json, bytecode,
   console scripts outside the site directory).

Together with ``verify.record`` (installed files match the installed RECORD) this proves the
installed files are the locked wheels' files. It catches a malicious release at a locked
version number whose own RECORD lists its payload, which a RECORD check alone cannot.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

from verify import record
from verify.facts import Dist, EnvFacts
from verify.findings import Finding, Severity, finding, ok
from verify.lockfile import Pin, normalize

CHECK = "wheelhouse"
PIP_ADDED = ("INSTALLER", "REQUESTED", "direct_url.json", "RECORD")
REMEDY = "rebuild the environment from the hash-locked files (make install)"


def _wheel_rows(data: bytes, dist_info: str) -> dict[str, str]:
    """Wheel RECORD as {site-relative path: hash field}; .data/purelib|platlib mapped to root."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        text = zf.read(f"{dist_info}/RECORD").decode("utf-8")
    rows: dict[str, str] = {}
    for row in csv.reader(text.splitlines()):
        if not row or not row[0]:
            continue
        path = row[0]
        parts = path.split("/", 2)
        if len(parts) == 3 and parts[0].endswith(".data"):
            if parts[1] not in ("purelib", "platlib"):
                continue  # scripts, headers, data: installed outside the site dir, rewritten
            path = parts[2]
        rows[path] = row[1] if len(row) > 1 else ""
    return rows


def _installed_rows(dist: Dist) -> dict[str, str]:
    rows: dict[str, str] = {}
    for path, field in record.rows(dist):
        rel = os.path.relpath(path, dist.dir)
        if rel.startswith(".."):
            continue  # console scripts pip generated outside the site dir
        rows[rel.replace(os.sep, "/")] = field
    return rows


def _ignorable(rel: str, dist_info: str) -> bool:
    if rel.endswith(".pyc"):
        return True
    head, _, name = rel.rpartition("/")
    return head == dist_info and name in PIP_ADDED


def compare(wheel: Mapping[str, str], installed: Mapping[str, str], dist_info: str) -> list[str]:
    """Differences between the wheel's RECORD and the installed RECORD (empty: identical)."""
    problems = []
    for rel in sorted(set(wheel) | set(installed)):
        if _ignorable(rel, dist_info):
            continue
        if rel not in installed:
            problems.append(f"{rel}: in the wheel, not installed")
        elif rel not in wheel:
            problems.append(f"{rel}: installed, not in the locked wheel")
        elif wheel[rel] != installed[rel]:
            problems.append(f"{rel}: installed hash differs from the locked wheel's")
    return problems


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def find_wheel(wheelhouse: Path, name: str, version: str) -> Path | None:
    for candidate in sorted(wheelhouse.glob("*.whl")):
        parts = candidate.name.split("-")
        if len(parts) >= 3 and normalize(parts[0]) == name and parts[1] == version:
            return candidate
    return None


def check_dist(dist: Dist, pin: Pin | None, wheelhouse: Path) -> Finding:
    name = normalize(dist.name or dist.dist_info)
    subject = f"{name}=={dist.version}"
    if pin is None or pin.version != dist.version:
        return finding(CHECK, subject, Severity.HIGH, "no lock pin for this version", REMEDY)
    wheel = find_wheel(wheelhouse, name, pin.version)
    if wheel is None:
        return finding(
            CHECK,
            subject,
            Severity.HIGH,
            f"no wheel for it in {wheelhouse}",
            "rebuild the wheelhouse",
        )
    data = wheel.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest not in pin.hashes:
        return finding(
            CHECK,
            subject,
            Severity.CRITICAL,
            f"{wheel.name} sha256 {digest} is not among the lock's hashes",
            "the wheelhouse holds a wheel that is not the locked release: rebuild it",
        )
    try:
        wheel_rows = _wheel_rows(data, dist.dist_info)
    except (KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        return finding(
            CHECK, subject, Severity.HIGH, f"{wheel.name}: unreadable RECORD ({exc})", REMEDY
        )
    problems = compare(wheel_rows, _installed_rows(dist), dist.dist_info)
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        return finding(
            CHECK, subject, Severity.CRITICAL, f"differs from the locked wheel: {shown}", REMEDY
        )
    return ok(CHECK, subject, f"installed files are those of locked wheel {wheel.name}")


def run(
    facts: EnvFacts,
    pins: Mapping[str, Pin],
    wheelhouse: Path,
    project: tuple[str, ...] = ("sealgate",),
) -> list[Finding]:
    skip = {normalize(p) for p in project}
    return [
        check_dist(d, pins.get(normalize(d.name or "")), wheelhouse)
        for d in facts.dists
        if normalize(d.name or d.dist_info) not in skip
    ]
