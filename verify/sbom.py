"""The CycloneDX 1.6 SBOM of the locked runtime set, and the check of an environment against it.

    python -m verify.sbom generate [--lock requirements.lock] [--out FILE] [--check]
    python -m verify.sbom verify [--sbom sbom/sealgate.cdx.json] [--target-python PY]
                                 [--allow NAME ...] [--wheelhouse DIR]

``generate`` is deterministic: the same lock and project version give the same bytes (no
timestamp; the serial number is a UUIDv5 of the lock's sha256; components sorted). Each component
is one pin of the lock, with its purl ``pkg:pypi/<name>@<version>``, every sha256 the lock lists
for it (one per wheel or sdist of that release), and its environment marker as a property.
``--check`` writes nothing and exits 1 when the committed file differs.

``verify`` compares an installed environment (read by the same ``-I -S`` probe as ``verify env``)
with the SBOM: a component whose marker holds for the target but is not installed is *missing*; a
distribution the SBOM does not list (other than ``--allow``, default the project itself) is
*extra*; a different version is *version*. About hashes, honestly: an installed distribution has
no wheel hash left, only its RECORD; the SBOM's hashes are those of the release files. So the
hash comparison needs the wheels the environment was installed from (``--wheelhouse``): each
installed distribution's wheel must have a sha256 the SBOM lists for it. Without a wheelhouse no
hash is compared (use ``verify record`` for installed files, and ``verify env --manifest`` for
the binding to the locked wheels at run time).

Exit status as for ``verify``: 0 clean, 1 findings, 2 usage or environment error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tomllib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from verify import render
from verify.facts import EnvFacts, gather
from verify.findings import Finding, Report, Severity, VerifyError, finding, ok
from verify.lockfile import Pin, normalize, parse
from verify.markers import MarkerError, evaluate
from verify.wheelhouse import find_wheel, sha256_file

CHECK = "sbom"
SPEC_VERSION = "1.6"
DEFAULT_LOCK = "requirements.lock"
DEFAULT_PYPROJECT = "pyproject.toml"
DEFAULT_SBOM = "sbom/sealgate.cdx.json"
PROJECT = "sealgate"
MARKER_PROPERTY = "sealgate:marker"
LOCK_PROPERTY = "sealgate:lock-sha256"
SERIAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/sealgate/sbom")
REMEDY = "rebuild the environment from the hash-locked files, or regenerate the SBOM"
EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def purl(name: str, version: str) -> str:
    return f"pkg:pypi/{normalize(name)}@{version}"


def serial_number(lock_bytes: bytes) -> str:
    return "urn:uuid:" + str(uuid.uuid5(SERIAL_NAMESPACE, hashlib.sha256(lock_bytes).hexdigest()))


def _component(name: str, version: str, hashes: Iterable[str], markers: Iterable[str]) -> Any:
    ref = purl(name, version)
    component: dict[str, Any] = {
        "type": "library",
        "bom-ref": ref,
        "name": name,
        "version": version,
        "purl": ref,
        "hashes": [{"alg": "SHA-256", "content": h} for h in sorted(hashes)],
    }
    properties = [{"name": MARKER_PROPERTY, "value": m} for m in sorted(set(markers))]
    if properties:
        component["properties"] = properties
    return component


def build(pins: Sequence[Pin], lock_bytes: bytes, project_version: str) -> dict[str, Any]:
    """The SBOM document for ``pins`` (one component per name and version; a pin repeated for
    several markers is one component listing every marker, and no marker if any pin has none)."""
    grouped: dict[tuple[str, str], tuple[set[str], list[str | None]]] = {}
    for pin in pins:
        hashes, markers = grouped.setdefault((pin.name, pin.version), (set(), []))
        hashes |= pin.hashes
        markers.append(pin.marker)
    components = []
    for (name, version), (hashes, markers) in sorted(grouped.items()):
        conditions = [] if None in markers else [m for m in markers if m is not None]
        components.append(_component(name, version, hashes, conditions))
    root = purl(PROJECT, project_version)
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": serial_number(lock_bytes),
        "version": 1,
        "metadata": {
            "component": {
                "type": "application",
                "bom-ref": root,
                "name": PROJECT,
                "version": project_version,
                "purl": root,
            },
            "properties": [
                {"name": LOCK_PROPERTY, "value": hashlib.sha256(lock_bytes).hexdigest()}
            ],
        },
        "components": components,
        "dependencies": [{"ref": root, "dependsOn": [c["bom-ref"] for c in components]}],
    }


def dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def project_version(pyproject: Path) -> str:
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        return str(data["project"]["version"])
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise VerifyError(f"cannot read the project version from {pyproject}: {exc}") from exc


def generate(lock: Path, pyproject: Path) -> str:
    try:
        lock_bytes = lock.read_bytes()
    except OSError as exc:
        raise VerifyError(f"cannot read lock file {lock}: {exc.strerror}") from exc
    pins = parse(lock_bytes.decode("utf-8"), str(lock))
    return dumps(build(pins, lock_bytes, project_version(pyproject)))


# -- verify -------------------------------------------------------------------------------------
def _expected(document: Mapping[str, Any], markers: Mapping[str, str]) -> dict[str, Any]:
    """The SBOM's components whose marker holds for the target, by normalized name."""
    if document.get("bomFormat") != "CycloneDX" or not isinstance(document.get("components"), list):
        raise VerifyError("not a CycloneDX document with components")
    expected: dict[str, Any] = {}
    for component in document["components"]:
        conditions = [
            p["value"] for p in component.get("properties", []) if p["name"] == MARKER_PROPERTY
        ]
        try:
            if conditions and not any(evaluate(m, markers) for m in conditions):
                continue
        except MarkerError as exc:
            raise VerifyError(f"component {component.get('name')}: {exc}") from exc
        expected[normalize(component["name"])] = component
    return expected


def compare(
    document: Mapping[str, Any],
    facts: EnvFacts,
    allowed: Iterable[str] = (PROJECT,),
    wheelhouse: Path | None = None,
) -> list[Finding]:
    """Pure except for reading wheels from ``wheelhouse`` when one is given."""
    expected = _expected(document, facts.markers)
    installed: dict[str, str] = {}
    for dist in facts.dists:
        installed[normalize(dist.name or dist.dist_info)] = dist.version or "?"
    extra_ok = {normalize(n) for n in allowed}
    results: list[Finding] = []
    for name in sorted(set(expected) | set(installed)):
        component, version = expected.get(name), installed.get(name)
        if component is None and version is not None:
            if name in extra_ok:
                results.append(ok(CHECK, name, f"{version} is allowed beside the SBOM"))
            else:
                reason = f"extra: {name} {version} is installed but not in the SBOM"
                results.append(finding(CHECK, name, Severity.HIGH, reason, REMEDY))
        elif component is not None and version is None:
            reason = f"missing: {name} {component['version']} is in the SBOM but not installed"
            results.append(finding(CHECK, name, Severity.MEDIUM, reason, REMEDY))
        elif component is not None and version != component["version"]:
            reason = f"version: installed {version}, the SBOM lists {component['version']}"
            results.append(finding(CHECK, name, Severity.HIGH, reason, REMEDY))
        elif component is not None and version is not None:
            results.append(_hash_result(name, version, component, wheelhouse))
    return results


def _hash_result(name: str, version: str, component: Any, wheelhouse: Path | None) -> Finding:
    if wheelhouse is None:
        return ok(CHECK, name, f"{version} as listed (hash not compared: no wheelhouse)")
    wheel = find_wheel(wheelhouse, name, version)
    if wheel is None:
        reason = f"hash: no wheel for {name} {version} in {wheelhouse}"
        return finding(CHECK, name, Severity.MEDIUM, reason, "give the build's wheelhouse")
    listed = {h["content"] for h in component.get("hashes", []) if h.get("alg") == "SHA-256"}
    digest = sha256_file(wheel)
    if digest not in listed:
        reason = f"hash: {wheel.name} has sha256 {digest}, which the SBOM does not list"
        return finding(CHECK, name, Severity.CRITICAL, reason, REMEDY)
    return ok(CHECK, name, f"{version} as listed; {wheel.name} sha256 listed")


def load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise VerifyError(f"cannot read SBOM {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise VerifyError(f"SBOM {path} is not JSON: {exc}") from exc


# -- command line -------------------------------------------------------------------------------
def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"SEALGATE_SBOM_{name}", default)


def build_parser(prog: str = "sbom") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="CycloneDX SBOM of the locked runtime set. Exit 0 clean, 1 findings or a "
        "stale SBOM, 2 usage or environment error.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gen = sub.add_parser("generate", help="write the SBOM from the lock (deterministic)")
    gen.add_argument("--lock", default=_env("LOCK", DEFAULT_LOCK), help="env SEALGATE_SBOM_LOCK")
    gen.add_argument(
        "--pyproject", default=_env("PYPROJECT", DEFAULT_PYPROJECT), help="for the version"
    )
    gen.add_argument("--out", default=_env("FILE", DEFAULT_SBOM), help="env SEALGATE_SBOM_FILE")
    gen.add_argument("--check", action="store_true", help="write nothing; exit 1 when stale")
    ver = sub.add_parser("verify", help="compare an installed environment with the SBOM")
    ver.add_argument("--sbom", default=_env("FILE", DEFAULT_SBOM), help="env SEALGATE_SBOM_FILE")
    ver.add_argument(
        "--target-python",
        default=os.environ.get("SEALGATE_VERIFY_TARGET_PYTHON", sys.executable),
        help="interpreter whose environment is compared (default: this one)",
    )
    ver.add_argument(
        "--allow",
        action="append",
        default=None,
        help=f"distribution allowed beside the SBOM, repeatable (default: {PROJECT})",
    )
    ver.add_argument("--wheelhouse", default=None, help="compare each wheel's sha256 too")
    ver.add_argument("--format", choices=render.FORMATS, default="text")
    ver.add_argument("--verbose", action="store_true")
    return parser


def _generate(args: argparse.Namespace) -> int:
    text = generate(Path(args.lock), Path(args.pyproject))
    out = Path(args.out)
    if args.check:
        try:
            current = out.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current != text:
            sys.stderr.write(f"sbom: {out} is stale; run 'python -m verify.sbom generate'\n")
            return EXIT_FINDINGS
        sys.stderr.write(f"sbom: {out} is up to date\n")
        return EXIT_CLEAN
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    sys.stderr.write(f"sbom: wrote {out}\n")
    return EXIT_CLEAN


def _verify(args: argparse.Namespace) -> int:
    document = load(Path(args.sbom))
    wheels = Path(args.wheelhouse) if args.wheelhouse else None
    if wheels is not None and not wheels.is_dir():
        raise VerifyError(f"wheelhouse {wheels} is not a directory")
    facts = gather(args.target_python)
    allowed = args.allow if args.allow is not None else [PROJECT]
    report = Report(tuple(compare(document, facts, allowed, wheels)), checks=(CHECK,))
    sys.stdout.write(render.render(report, args.format, args.verbose))
    sys.stderr.write(f"sbom: {render.summary(report)}\n")
    return EXIT_CLEAN if report.clean else EXIT_FINDINGS


def main(argv: Sequence[str] | None = None, prog: str = "sbom") -> int:
    try:
        args = build_parser(prog).parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int | None) else EXIT_ERROR
    try:
        return _generate(args) if args.command == "generate" else _verify(args)
    except VerifyError as exc:
        sys.stderr.write(f"sbom: error: {exc}\n")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
