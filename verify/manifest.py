"""The signed install manifest: every file on the import paths, bound at install time to the
locked wheel it came from, and checked at every start without the wheels.

``bind`` runs at install time (``docker/install.sh``), where the wheelhouse is. For every
installed distribution, its wheel must be in the wheelhouse: a dependency's wheel must have a
sha256 that its lock pin lists, and the project's own wheel (built from the source tree at install,
so in no lock) is recorded by its sha256. Then every file in the site directories and the private
library must be one of:

- ``wheel``: a member of its distribution's wheel with the same bytes (the member itself is
  hashed, not a RECORD's claim about it);
- ``installer``: what pip writes into a dist-info (``INSTALLER``, ``REQUESTED``,
  ``direct_url.json``, and the ``RECORD`` it rewrites);
- ``bytecode``: a ``.pyc`` compiled at install from a ``wheel`` source, whose header names that
  source (checked-hash: the source's hash; timestamp: its mtime and size).

Anything else (a file no wheel ships, a symlink, bytecode with no bound source) stops the
manifest from being made. ``seal`` signs the document's exact bytes with ECDSA P-256.

``check`` runs at start-up, with the standard library only: the signature must verify with the
pinned public key (``verify.p256``), and every file must equal the manifest. A changed, missing or
unlisted file is a finding that names the file. Installed RECORD files are not trusted for
anything, so rewriting a RECORD row along with a file changes nothing; bytecode is bound like
any other file, so a poisoned ``.pyc`` is a changed file.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from verify import p256
from verify.facts import Dist, EnvFacts
from verify.findings import Finding, Severity, VerifyError, finding, ok

if TYPE_CHECKING:  # the check runs before anything else of verify is imported (verify.startup)
    from verify.lockfile import Pin

CHECK = "manifest"
FORMAT_VERSION = 2
REMEDY = "rebuild the environment (and its manifest) from the hash-locked files"
INSTALLER_FILES = ("INSTALLER", "REQUESTED", "direct_url.json", "RECORD")
CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pth", ".so", ".pyd", ".dylib")
PYC_CHECKED_HASH = 0b11


@dataclass(frozen=True)
class Entry:
    sha256: str
    dist: str
    origin: str


def _rel(facts: EnvFacts, path: str) -> str:
    head = facts.prefix + os.sep
    if path.startswith(head):
        return path[len(head) :].replace(os.sep, "/")
    return os.path.relpath(path, facts.prefix).replace(os.sep, "/")


def _roots(facts: EnvFacts) -> list[str]:
    return [_rel(facts, root) for root in facts.roots]


def _in_roots(facts: EnvFacts, path: str) -> bool:
    return any(path.startswith(root + os.sep) for root in facts.roots)


def find_wheel(wheelhouse: Path, name: str, version: str) -> Path | None:
    from verify.lockfile import normalize

    for candidate in sorted(wheelhouse.glob("*.whl")):
        parts = candidate.name.split("-")
        if len(parts) >= 3 and normalize(parts[0]) == name and parts[1] == version:
            return candidate
    return None


def _members(wheel: Path, dist_info: str) -> dict[str, str]:
    """Wheel members as {path relative to the install root: sha256}; .data/purelib|platlib
    map to the root, other .data schemes (scripts, headers, data) install elsewhere."""
    import zipfile  # install time only: the start-up check never opens a wheel

    members: dict[str, str] = {}
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            path = info.filename
            parts = path.split("/", 2)
            if len(parts) == 3 and parts[0].endswith(".data"):
                if parts[1] not in ("purelib", "platlib"):
                    continue
                path = parts[2]
            if path == f"{dist_info}/RECORD":
                continue  # pip rewrites it: an installer file
            members[path] = hashlib.sha256(zf.read(info)).hexdigest()
    return members


def _wheel_for(
    dist: Dist, pins: Mapping[str, Pin], wheels: Path, project: set[str]
) -> tuple[Path, str, bool]:
    from verify.lockfile import normalize

    name = normalize(dist.name or dist.dist_info)
    subject = f"{name}=={dist.version}"
    wheel = find_wheel(wheels, name, dist.version or "")
    if wheel is None:
        raise VerifyError(f"cannot bind {subject}: no wheel for it in {wheels}")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if name in project:
        return wheel, digest, False
    pin = pins.get(name)
    if pin is None or pin.version != dist.version:
        raise VerifyError(f"cannot bind {subject}: no lock pin for this version")
    if digest not in pin.hashes:
        raise VerifyError(
            f"cannot bind {subject}: {wheel.name} sha256 {digest} is not among the lock's hashes"
        )
    return wheel, digest, True


def _source_of(pyc: str) -> str | None:
    head, name = os.path.split(pyc)
    if os.path.basename(head) != "__pycache__" or not name.endswith(".pyc"):
        return None
    return os.path.join(os.path.dirname(head), name.split(".", 1)[0] + ".py")


def compiled_from(pyc: str, source: str) -> bool:
    """The .pyc header names this source: checked-hash with the source's hash, or timestamp
    with the source's mtime and size (how compileall and pip write bytecode)."""
    try:
        with open(pyc, "rb") as handle:
            header = handle.read(16)
        data = Path(source).read_bytes()
        st = os.stat(source)
    except OSError:
        return False
    if len(header) < 16 or header[:4] != importlib.util.MAGIC_NUMBER:
        return False
    flags = int.from_bytes(header[4:8], "little")
    if flags == PYC_CHECKED_HASH:
        return header[8:16] == importlib.util.source_hash(data)
    return flags == 0 and header[8:16] == (
        (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
        + (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")
    )


def bind(
    facts: EnvFacts,
    pins: Mapping[str, Pin],
    wheels: Path,
    project: Sequence[str] = ("sealgate",),
) -> dict[str, Any]:
    """The manifest document; ``VerifyError`` naming the first file or wheel that does not bind."""
    from verify.lockfile import normalize

    skip = {normalize(p) for p in project}
    files: dict[str, Entry] = {}
    dists = []
    for dist in sorted(facts.dists, key=lambda d: normalize(d.name or d.dist_info)):
        name = normalize(dist.name or dist.dist_info)
        wheel, digest, locked = _wheel_for(dist, pins, wheels, skip)
        for member, sha in _members(wheel, dist.dist_info).items():
            path = os.path.normpath(os.path.join(dist.dir, member))
            installed = facts.files.get(path)
            if installed != sha:
                why = "missing" if installed is None else "its bytes differ from the wheel's"
                raise VerifyError(f"cannot bind {path}: {why} ({wheel.name})")
            claimed = files.get(path)
            if claimed is not None and claimed.sha256 != sha:
                raise VerifyError(f"cannot bind {path}: two wheels ship it with different bytes")
            files[path] = Entry(sha, name, "wheel")
        for extra in INSTALLER_FILES:
            path = os.path.join(dist.dir, dist.dist_info, extra)
            written = facts.files.get(path)
            if written:
                files[path] = Entry(written, name, "installer")
        dists.append(
            {
                "name": name,
                "version": dist.version,
                "dist_info": _rel(facts, os.path.join(dist.dir, dist.dist_info)),
                "wheel": wheel.name,
                "wheel_sha256": digest,
                "locked": locked,
            }
        )
    for path, content in sorted(facts.files.items()):
        if path in files or not _in_roots(facts, path):
            continue
        source = _source_of(path)
        owner = files.get(source) if source else None
        if not content:
            raise VerifyError(f"cannot bind {path}: not a regular file (or not hashed)")
        if source is None or owner is None or owner.origin != "wheel":
            raise VerifyError(f"cannot bind {path}: no locked wheel ships it")
        if not compiled_from(path, source):
            raise VerifyError(f"cannot bind {path}: its header does not name {source}")
        files[path] = Entry(content, owner.dist, "bytecode")
    return {
        "format": FORMAT_VERSION,
        "prefix": facts.prefix,
        "cache_tag": facts.cache_tag,
        "roots": _roots(facts),
        "dists": dists,
        "files": {_rel(facts, p): [e.sha256, e.dist, e.origin] for p, e in sorted(files.items())},
    }


def seal(doc: Mapping[str, Any], sign: Callable[[bytes], bytes]) -> bytes:
    """The signed manifest file: the document's exact bytes and a DER signature over them."""
    payload = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    signature = base64.b64encode(sign(payload.encode())).decode()
    return (json.dumps({"payload": payload, "signature": signature}) + "\n").encode()


def open_signed(manifest: bytes, public_key_pem: bytes) -> dict[str, Any]:
    """The document, once its signature verifies; ``ValueError`` otherwise."""
    key = p256.load_pem_public_key(public_key_pem)
    outer = json.loads(manifest)
    payload = outer["payload"]
    signature = base64.b64decode(outer["signature"], validate=True)
    if not isinstance(payload, str) or not p256.verify(key, signature, payload.encode()):
        raise ValueError("the signature does not verify with the pinned key")
    doc = json.loads(payload)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_VERSION:
        raise ValueError(f"not an install manifest of format {FORMAT_VERSION}")
    return doc


def _changed(path: str, entry: Entry, versions: Mapping[str, str]) -> Finding:
    what = {
        "wheel": "file of the locked wheel",
        "installer": "installer metadata",
        "bytecode": "bytecode compiled at install",
    }.get(entry.origin, entry.origin)
    reason = (
        f"differs from the signed install manifest: not the {what} of "
        f"{entry.dist} {versions.get(entry.dist, '?')}"
    )
    return finding(CHECK, path, Severity.CRITICAL, reason, REMEDY)


def _unlisted(path: str) -> Finding:
    code = path.endswith(CODE_SUFFIXES)
    reason = "not in the signed install manifest: no locked wheel ships it"
    if path.endswith((".pyc", ".pyo")):
        reason += " (bytecode Python would load instead of a source)"
    severity = Severity.CRITICAL if code else Severity.HIGH
    return finding(CHECK, path, severity, reason, REMEDY)


def check(
    facts: EnvFacts, manifest: bytes, public_key_pem: bytes, key_name: str = "the pinned key"
) -> list[Finding]:
    """Every file in the site directories and the private library against the manifest."""
    subject = str(facts.manifest_path)
    try:
        doc = open_signed(manifest, public_key_pem)
        entries: dict[str, list[str]] = doc["files"]
        versions = {str(d["name"]): str(d["version"]) for d in doc["dists"]}
        roots = list(doc["roots"])
    except p256.InvalidKey as exc:
        raise VerifyError(f"manifest key {key_name}: {exc}") from exc
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        reason = f"the install manifest is malformed or not signed by {key_name}: {exc}"
        return [finding(CHECK, subject, Severity.CRITICAL, reason, REMEDY)]
    results = [ok(CHECK, subject, f"signature verifies with {key_name}")]
    if doc.get("cache_tag") != facts.cache_tag or roots != _roots(facts):
        why = (
            f"made for {doc.get('cache_tag')} with import roots {roots}; this interpreter is "
            f"{facts.cache_tag} with {_roots(facts)}"
        )
        results.append(finding(CHECK, subject, Severity.CRITICAL, why, REMEDY))
    bad: set[str] = set()
    head = facts.prefix + os.sep
    inside = tuple(root + os.sep for root in facts.roots)
    present = {
        (p[len(head) :].replace(os.sep, "/") if p.startswith(head) else _rel(facts, p)): p
        for p in facts.files
        if p.startswith(inside)
    }
    files = facts.files
    for rel, (sha256, dist, origin) in entries.items():
        path = present.get(rel) or os.path.join(facts.prefix, rel)
        actual = files.get(path)
        if actual == sha256:
            continue
        if actual is None:
            why = f"listed in the signed install manifest ({dist}) but missing"
            results.append(finding(CHECK, path, Severity.HIGH, why, REMEDY))
        else:
            results.append(_changed(path, Entry(sha256, dist, origin), versions))
        bad.add(dist)
    for rel in sorted(set(present) - set(entries)):
        results.append(_unlisted(present[rel]))
    for dist in doc["dists"]:
        if dist["name"] not in bad:
            kind = "locked wheel" if dist["locked"] else "project wheel built at install"
            why = f"every file is the {kind} {dist['wheel']}'s"
            results.append(ok(CHECK, f"{dist['name']}=={dist['version']}", why))
    return results
