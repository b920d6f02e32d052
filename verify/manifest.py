"""A signed install manifest: the wheelhouse binding, made once at build time, checked at start.

``create`` runs where the wheelhouse is (the image's build stage): every installed distribution
must pass the wheelhouse check (its wheel's sha256 is in the lock, its wheel RECORD equals the
installed RECORD). It records, per distribution, the name, version, the locked wheel's sha256
and the sha256 of the installed RECORD file, and signs that document with an ECDSA P-256 key
(SHA-256, base64 DER signature). ``check`` (start-up, no wheelhouse needed) verifies the
signature with the pinned public key and that the installed distributions and their RECORD
files are exactly those of the manifest; ``verify.record`` then proves the files match RECORD.

The signing key must not be in the image: whoever holds it can bless any environment.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from verify import wheelhouse
from verify.facts import Dist, EnvFacts
from verify.findings import Finding, Severity, VerifyError, finding, ok
from verify.lockfile import Pin, normalize
from verify.signatures import load_p256_key

CHECK = "manifest"
FORMAT_VERSION = 1
REMEDY = "rebuild the environment (and its manifest) from the hash-locked files"


def canonical(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _record_sha(facts: EnvFacts, dist: Dist) -> str | None:
    return facts.files.get(os.path.join(dist.dir, dist.dist_info, "RECORD"))


def create(
    facts: EnvFacts,
    pins: Mapping[str, Pin],
    wheels: Path,
    private_key_pem: bytes,
    project: tuple[str, ...] = ("sealgate",),
) -> bytes:
    """The signed manifest; ``VerifyError`` if any distribution fails the wheelhouse check."""
    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise VerifyError(f"manifest signing key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise VerifyError("manifest signing key must be an ECDSA P-256 private key")
    skip = {normalize(p) for p in project}
    entries = []
    for dist in sorted(facts.dists, key=lambda d: normalize(d.name or d.dist_info)):
        name = normalize(dist.name or dist.dist_info)
        if name in skip:
            continue
        bound = wheelhouse.check_dist(dist, pins.get(name), wheels)
        if not bound.passed:
            raise VerifyError(f"cannot make a manifest: {bound.subject}: {bound.reason}")
        wheel = wheelhouse.find_wheel(wheels, name, dist.version or "")
        if wheel is None:  # check_dist passed, so this cannot happen; fail closed anyway
            raise VerifyError(f"cannot make a manifest: no wheel for {name}")
        entries.append(
            {
                "name": name,
                "version": dist.version,
                "wheel": wheel.name,
                "wheel_sha256": wheelhouse.sha256_file(wheel),
                "record_sha256": _record_sha(facts, dist),
            }
        )
    doc = {"version": FORMAT_VERSION, "dists": entries}
    signature = key.sign(canonical(doc), ec.ECDSA(hashes.SHA256()))
    return json.dumps(
        {"manifest": doc, "signature": base64.b64encode(signature).decode()}, indent=1
    ).encode()


def check(
    facts: EnvFacts,
    manifest: bytes,
    public_key_pem: bytes,
    project: tuple[str, ...] = ("sealgate",),
) -> list[Finding]:
    key = load_p256_key(public_key_pem)
    try:
        outer = json.loads(manifest)
        doc = outer["manifest"]
        key.verify(base64.b64decode(outer["signature"]), canonical(doc), ec.ECDSA(hashes.SHA256()))
        if doc["version"] != FORMAT_VERSION:
            raise ValueError("unknown manifest version")
        expected = {e["name"]: e for e in doc["dists"]}
    except (ValueError, KeyError, TypeError, InvalidSignature):
        return [
            finding(
                CHECK,
                "install manifest",
                Severity.CRITICAL,
                "manifest is malformed or its signature does not verify with the pinned key",
                REMEDY,
            )
        ]
    skip = {normalize(p) for p in project}
    results: list[Finding] = []
    seen = set()
    for dist in facts.dists:
        name = normalize(dist.name or dist.dist_info)
        if name in skip:
            continue
        seen.add(name)
        entry = expected.get(name)
        subject = f"{name}=={dist.version}"
        if entry is None:
            results.append(finding(CHECK, subject, Severity.HIGH, "not in the manifest", REMEDY))
        elif entry["version"] != dist.version:
            why = f"manifest has version {entry['version']}"
            results.append(finding(CHECK, subject, Severity.HIGH, why, REMEDY))
        elif entry["record_sha256"] != _record_sha(facts, dist):
            why = "installed RECORD differs from the one bound to the locked wheel at build time"
            results.append(finding(CHECK, subject, Severity.CRITICAL, why, REMEDY))
        else:
            results.append(ok(CHECK, subject, f"bound to locked wheel {entry['wheel']}"))
    for name in sorted(set(expected) - seen):
        results.append(
            finding(CHECK, name, Severity.MEDIUM, "in the manifest, not installed", REMEDY)
        )
    return results
