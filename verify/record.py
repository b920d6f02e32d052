"""RECORD integrity: every file a distribution's RECORD lists exists with that hash, and every
file in the site directories is owned by some RECORD.

What this proves: nothing was changed, removed or dropped in after installation. What it does
not prove: that the release itself was benign (a malicious wheel lists its own payload in its
own RECORD); the lock hashes (``verify.wheelhouse``) and the pth allowlist cover that.
Bytecode (``__pycache__/*.pyc``) that no RECORD hashes is accepted when its source file is
owned; its content is not checked (pip writes RECORD rows for bytecode without a hash).
"""

from __future__ import annotations

import base64
import csv
import os
from collections.abc import Iterable

from verify.facts import Dist, EnvFacts
from verify.findings import Finding, Severity, finding, ok

CHECK = "record"
REINSTALL = "reinstall the distribution from the hash-locked files (make install)"


def record_hash_hex(value: str) -> tuple[str, str] | None:
    """``sha256=<urlsafe b64>`` -> (algorithm, hex digest); None if malformed."""
    algorithm, sep, digest = value.partition("=")
    if not sep:
        return None
    try:
        raw = base64.urlsafe_b64decode(digest + "=" * (-len(digest) % 4))
    except ValueError:
        return None
    return algorithm, raw.hex()


def rows(dist: Dist) -> list[tuple[str, str]]:
    """(absolute normalized path, hash field) for each RECORD row."""
    out = []
    for row in csv.reader((dist.record or "").splitlines()):
        if row and row[0]:
            out.append(
                (os.path.normpath(os.path.join(dist.dir, row[0])), row[1] if len(row) > 1 else "")
            )
    return out


def check_dist(dist: Dist, files: dict[str, str | None]) -> list[Finding]:
    subject = f"{dist.name or '?'} {dist.version or '?'} ({dist.dist_info})"
    if dist.record is None:
        return [
            finding(
                CHECK,
                subject,
                Severity.HIGH,
                "distribution has no RECORD file: its files cannot be verified",
                REINSTALL,
            )
        ]
    problems: list[Finding] = []
    for path, field in rows(dist):
        if not field:
            continue  # RECORD itself and bytecode carry no hash
        parsed = record_hash_hex(field)
        actual = files.get(path)
        if parsed is None or parsed[0] != "sha256":
            problems.append(
                finding(
                    CHECK, path, Severity.MEDIUM, f"RECORD hash {field!r} is not sha256", REINSTALL
                )
            )
        elif actual is None:
            problems.append(
                finding(
                    CHECK,
                    path,
                    Severity.HIGH,
                    f"listed in {subject}'s RECORD but missing",
                    REINSTALL,
                )
            )
        elif actual != parsed[1]:
            problems.append(
                finding(
                    CHECK,
                    path,
                    Severity.CRITICAL,
                    f"content differs from {subject}'s RECORD (modified after install)",
                    REINSTALL,
                )
            )
    return problems or [ok(CHECK, subject, "every file matches RECORD")]


def bytecode_source(path: str) -> str | None:
    head, name = os.path.split(path)
    if os.path.basename(head) != "__pycache__" or not name.endswith(".pyc"):
        return None
    module = name.split(".", 1)[0]
    return os.path.join(os.path.dirname(head), module + ".py")


def unowned(facts: EnvFacts, owned: Iterable[str]) -> list[Finding]:
    known = set(owned)
    results = []
    for path in sorted(facts.files):
        if path in known or not any(path.startswith(d + os.sep) for d in facts.roots):
            continue
        source = bytecode_source(path)
        if source is not None and source in known:
            continue
        results.append(
            finding(
                CHECK,
                path,
                Severity.HIGH,
                "file on the import paths that no distribution's RECORD owns",
                "remove it, or reinstall from the hash-locked files into a fresh environment",
            )
        )
    return results


def run(facts: EnvFacts) -> list[Finding]:
    results: list[Finding] = []
    owned: list[str] = []
    for dist in facts.dists:
        results += check_dist(dist, facts.files)
        owned += [path for path, _ in rows(dist)]
    return results + unowned(facts, owned)
