"""Signed policy bundles: the files in ``policies/`` bound to a keyed signature.

``sign`` writes ``MANIFEST.json`` (every regular file under the directory with its sha256: not
only the YAML policies but anything a policy may point at, such as a trusted root or a public key,
and anything else dropped there) and ``MANIFEST.json.sig`` (base64 DER ECDSA P-256 over SHA-256
of the manifest's bytes, the cosign keyed format). ``check`` verifies the signature with a pinned
public key, then that every listed file has its listed hash and that no file is unlisted: a
policy changed, added or removed without a new signature is a finding.

    python -m verify.policy_bundle sign  --policies policies --key signing-key.pem
    python -m verify.policy_bundle check --policies policies --key signing-key.pub.pem
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path

from verify import p256
from verify.findings import Finding, Report, Severity, VerifyError, finding, ok
from verify.render import render

CHECK = "policy-bundle"
MANIFEST = "MANIFEST.json"
SIGNATURE = "MANIFEST.json.sig"
UNSIGNED = frozenset({MANIFEST, SIGNATURE})
REMEDY = "restore the signed policies, or have the policy owner re-sign the bundle"


def policy_files(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` (relative path -> sha256), the manifest and its signature
    excluded. Every file, whatever its name: a file the bundle does not cover is one a policy
    could be made to read without a signature."""
    files = {}
    for path in directory.rglob("*"):
        name = path.relative_to(directory).as_posix()
        if name not in UNSIGNED and path.is_file():
            files[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return dict(sorted(files.items()))


def manifest_bytes(directory: Path) -> bytes:
    body = {"version": 1, "files": policy_files(directory)}
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def sign(directory: Path, private_key_pem: bytes) -> None:
    # Signing needs a real implementation (nonces, constant time): cryptography, imported here
    # only, so checking a bundle (at start-up) never loads it.
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise VerifyError("the signing key must be an ECDSA P-256 private key (PEM)")
    manifest = manifest_bytes(directory)
    signature = key.sign(manifest, ec.ECDSA(hashes.SHA256()))
    (directory / MANIFEST).write_bytes(manifest)
    (directory / SIGNATURE).write_bytes(base64.b64encode(signature) + b"\n")


def _bad(subject: str, reason: str) -> Finding:
    return finding(CHECK, subject, Severity.CRITICAL, reason, REMEDY)


def check(directory: Path, public_key_pem: bytes) -> list[Finding]:
    try:
        key = p256.load_pem_public_key(public_key_pem)
    except p256.InvalidKey as exc:
        raise VerifyError(
            f"the policy public key must be an ECDSA P-256 key (PEM): {exc}"
        ) from None
    try:
        manifest = (directory / MANIFEST).read_bytes()
        signature = base64.b64decode((directory / SIGNATURE).read_bytes().strip(), validate=True)
    except (OSError, ValueError) as exc:
        return [
            _bad(str(directory), f"no readable signed manifest ({MANIFEST} + {SIGNATURE}): {exc}")
        ]
    if not p256.verify(key, signature, manifest):
        return [_bad(MANIFEST, "the manifest's signature does not verify with the pinned key")]
    try:
        listed = json.loads(manifest)["files"]
    except (ValueError, KeyError, TypeError):
        listed = None
    if not isinstance(listed, dict) or not all(isinstance(v, str) for v in listed.values()):
        return [_bad(MANIFEST, "the signed manifest is not a policy manifest")]
    actual = policy_files(directory)
    results = []
    for name, digest in listed.items():
        if name not in actual:
            results.append(_bad(name, "listed in the signed manifest but missing"))
        elif actual[name] != digest:
            results.append(_bad(name, "changed since the bundle was signed"))
    for name in sorted(set(actual) - set(listed)):
        results.append(_bad(name, "not in the signed manifest (added after signing)"))
    return results or [
        ok(CHECK, str(directory), f"{len(listed)} policy files match the signed manifest")
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verify.policy_bundle", description=__doc__)
    parser.add_argument("command", choices=("sign", "check"))
    parser.add_argument(
        "--policies", default="policies", help="policy directory (default ./policies)"
    )
    parser.add_argument("--key", required=True, help="PEM private key (sign) or public key (check)")
    parser.add_argument("--format", default="text", choices=("text", "json", "sarif"))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    try:
        key = Path(args.key).read_bytes()
        if args.command == "sign":
            sign(Path(args.policies), key)
            print(f"signed {Path(args.policies) / MANIFEST}", file=sys.stderr)
            return 0
        results = check(Path(args.policies), key)
    except (OSError, VerifyError) as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return 2
    report = Report(tuple(results), 0.0, (CHECK,))
    print(render(report, args.format, verbose=True), end="")
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
