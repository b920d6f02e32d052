"""Subcommands beside the environment checks: ``manifest``, ``vulns``, ``signature``. Each
parser sets ``run``: parsed arguments -> list of findings.

The keyless signature checks and manifest signing need ``sigstore`` / ``cryptography``: they
import them when they run (``verify.startup.import_dependencies``), never at import time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from verify import lockfile, manifest, signatures, startup, vulns
from verify.facts import gather
from verify.findings import Finding, VerifyError, ok
from verify.policies import default_dir, load_signers

Common = Callable[[argparse.ArgumentParser], None]
Env = Callable[..., str | None]


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise VerifyError(f"cannot read {path}: {exc.strerror}") from exc


def _identity(args: argparse.Namespace) -> signatures.Identity:
    if args.signer:
        signers = load_signers(Path(args.policies))
        if args.signer not in signers:
            raise VerifyError(
                f"signer {args.signer!r} is not in {args.policies}/trusted-signers.yaml"
            )
        s = signers[args.signer]
        return signatures.Identity(s.identity, s.issuer, s.trusted_root, s.repository, s.ref)
    if not (args.identity and args.issuer and args.trusted_root):
        raise VerifyError(
            "keyless verification needs --signer, or --identity, --issuer and --trusted-root"
        )
    return signatures.Identity(
        args.identity, args.issuer, Path(args.trusted_root), args.repository, args.ref
    )


def run_signature(args: argparse.Namespace) -> list[Finding]:
    artifact = _read(args.artifact)
    subject = args.artifact
    if args.key:
        key = _read(args.key)
        if args.signature:
            return [signatures.cosign_blob(subject, artifact, _read(args.signature), key)]
        if args.bundle:
            return [signatures.cosign_keyed_bundle(subject, artifact, _read(args.bundle), key)]
        raise VerifyError("--key needs --signature or --bundle")
    startup.import_dependencies()
    who = _identity(args)
    if args.certificate:
        if not args.signature:
            raise VerifyError("--certificate needs --signature")
        return [
            signatures.detached_certificate(
                subject, artifact, _read(args.signature), _read(args.certificate), who
            )
        ]
    if args.attestation:
        name = Path(args.artifact).name
        return [
            signatures.pep740_attestation(subject, artifact, name, _read(args.attestation), who)
        ]
    if not args.bundle:
        raise VerifyError("give --bundle, --attestation, or --key with --signature")
    if args.dsse:
        return [signatures.dsse_bundle(subject, artifact, _read(args.bundle), who)]
    return [signatures.sigstore_bundle(subject, artifact, _read(args.bundle), who)]


def run_vulns(args: argparse.Namespace) -> list[Finding]:
    pins = lockfile.load(Path(p) for p in args.lock)
    return vulns.audit(pins, args.osv_url, args.timeout)


def _project(args: argparse.Namespace) -> tuple[str, ...]:
    return (args.project,) if args.project else ()


Signer = Callable[[bytes], bytes]


def _signer(args: argparse.Namespace) -> tuple[Signer, bytes]:
    """(sign, public key PEM): the release key from --key, or a key made here and forgotten."""
    startup.import_dependencies()
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if args.ephemeral_key:
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        try:
            loaded = serialization.load_pem_private_key(_read(args.key), password=None)
        except (ValueError, TypeError) as exc:
            raise VerifyError(f"manifest signing key: {exc}") from exc
        if not isinstance(loaded, ec.EllipticCurvePrivateKey) or loaded.curve.name != "secp256r1":
            raise VerifyError("manifest signing key must be an ECDSA P-256 private key")
        key = loaded
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def sign(data: bytes) -> bytes:
        return key.sign(data, ec.ECDSA(hashes.SHA256()))

    return sign, public


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise VerifyError(f"cannot write {path}: {exc.strerror}") from exc


def run_manifest_create(args: argparse.Namespace) -> list[Finding]:
    if bool(args.key) == bool(args.ephemeral_key):
        raise VerifyError("give --key (the release key) or --ephemeral-key, not both")
    facts = gather(args.target_python, hash_all=True)
    pins = lockfile.applicable(lockfile.load(Path(p) for p in args.lock), facts.markers)
    # Bind first, with the standard library alone; only then import the signer.
    doc = manifest.bind(facts, pins, Path(args.wheelhouse), _project(args))
    sign, public = _signer(args)
    out = Path(args.out) if args.out else facts.manifest_path
    _write(out, manifest.seal(doc, sign))
    key_out = Path(args.public_key_out) if args.public_key_out else None
    if key_out is None and args.ephemeral_key:
        key_out = facts.manifest_key_path
    if key_out is not None:
        _write(key_out, public)
    count = len(doc["files"])
    return [ok(manifest.CHECK, str(out), f"{count} files bound and signed")]


def run_manifest_check(args: argparse.Namespace) -> list[Finding]:
    facts = gather(args.target_python, hash_all=True)
    return manifest.check(facts, _read(args.manifest), _read(args.key), key_name=args.key)


def _manifest_parsers(sub: Any, common: Common, env: Env) -> None:
    text = "signed install manifest: create at build time (with the wheelhouse), check at start"
    m = sub.add_parser("manifest", help=text, description=text)
    msub = m.add_subparsers(dest="manifest_command", required=True, metavar="ACTION")
    create = msub.add_parser(
        "create", help="bind every installed file to the locked wheels (install time); sign"
    )
    check = msub.add_parser("check", help="verify the signature and every installed file")
    for p in (create, check):
        p.add_argument(
            "--target-python",
            default=env("TARGET_PYTHON", sys.executable),
            help="interpreter whose environment is bound (env SEALGATE_VERIFY_TARGET_PYTHON)",
        )
        p.add_argument(
            "--project",
            default=env("PROJECT", "sealgate"),
            help="the project's own distribution, bound to its wheel in the wheelhouse rather "
            "than to a lock pin (env SEALGATE_VERIFY_PROJECT; default sealgate)",
        )
        common(p)
    create.add_argument("--lock", action="append", default=None, help="lock file, repeatable")
    create.add_argument(
        "--wheelhouse", required=True, help="the wheels installed from, the project's included"
    )
    create.add_argument("--key", help="ECDSA P-256 private key (PEM, PKCS#8): the release key")
    create.add_argument(
        "--ephemeral-key",
        action="store_true",
        help="sign with a key made for this run and never written; its public half goes to "
        "--public-key-out (default: beside the manifest)",
    )
    create.add_argument(
        "--out", help="manifest file to write (default: lib/sealgate-manifest.json in the venv)"
    )
    create.add_argument("--public-key-out", help="where to write the public key (PEM)")
    create.set_defaults(run=run_manifest_create, lock_env=True)
    check.add_argument(
        "--manifest",
        default=env("MANIFEST"),
        required=env("MANIFEST") is None,
        help="signed manifest (env SEALGATE_VERIFY_MANIFEST)",
    )
    check.add_argument(
        "--key",
        default=env("MANIFEST_KEY"),
        required=env("MANIFEST_KEY") is None,
        help="pinned ECDSA P-256 public key (PEM) (env SEALGATE_VERIFY_MANIFEST_KEY)",
    )
    check.set_defaults(run=run_manifest_check)


def add_parsers(sub: Any, common: Common, env: Env) -> None:
    """Register the artifact subcommands on ``sub`` (an argparse subparsers action)."""
    _manifest_parsers(sub, common, env)
    text = "known vulnerabilities of every pin in the lock files, from an OSV-compatible service"
    v = sub.add_parser("vulns", help=text, description=text)
    v.add_argument(
        "--lock",
        action="append",
        default=None,
        help="hash-locked requirements file, repeatable (env SEALGATE_VERIFY_LOCKS; default "
        "requirements.lock + requirements-build.lock)",
    )
    v.add_argument(
        "--osv-url",
        default=env("OSV_URL", vulns.DEFAULT_OSV_URL),
        help="OSV querybatch endpoint (env SEALGATE_VERIFY_OSV_URL; default "
        f"{vulns.DEFAULT_OSV_URL})",
    )
    v.add_argument(
        "--timeout",
        type=float,
        default=float(env("OSV_TIMEOUT", str(vulns.DEFAULT_TIMEOUT_SECONDS)) or 0),
        help="seconds (env SEALGATE_VERIFY_OSV_TIMEOUT; default 20)",
    )
    common(v)
    v.set_defaults(run=run_vulns, lock_env=True)
    text = "verify an artifact's signature offline (sigstore, DSSE, PEP 740, cosign keyed)"
    p = sub.add_parser("signature", help=text, description=text)
    p.add_argument("artifact", help="the signed file")
    p.add_argument("--bundle", help="sigstore bundle (.sigstore / .sigstore.json)")
    p.add_argument("--dsse", action="store_true", help="the bundle is DSSE: check its statement")
    p.add_argument("--attestation", help="PEP 740 attestation (JSON) for a distribution file")
    p.add_argument(
        "--signature", help="base64 signature (with --key, or with --certificate for keyless)"
    )
    p.add_argument("--certificate", help="PEM Fulcio certificate of a detached keyless signature")
    p.add_argument("--key", help="cosign ECDSA P-256 public key (PEM)")
    p.add_argument("--signer", help="signer name from <policies>/trusted-signers.yaml")
    p.add_argument("--identity", help="certificate identity (instead of --signer)")
    p.add_argument("--issuer", help="OIDC issuer (instead of --signer)")
    p.add_argument("--trusted-root", help="pinned sigstore trusted_root.json (instead of --signer)")
    p.add_argument("--repository", help="required GitHub workflow repository claim")
    p.add_argument("--ref", help="required GitHub workflow ref claim")
    p.add_argument(
        "--policies",
        default=env("POLICIES", str(default_dir())),
        help="policy directory (env SEALGATE_VERIFY_POLICIES; default: policies/ beside the "
        "project, as for sealgate serve)",
    )
    common(p)
    p.set_defaults(run=run_signature)
