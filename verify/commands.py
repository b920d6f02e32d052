"""Subcommands that verify artifacts rather than the environment: ``signature``, ``vulns``,
``wheelhouse``. Each parser sets ``run``: parsed arguments -> list of findings.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from verify import lockfile, manifest, signatures, vulns
from verify.facts import gather
from verify.findings import Finding, VerifyError
from verify.policies import load_signers

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


def run_manifest_create(args: argparse.Namespace) -> list[Finding]:
    facts = gather(args.target_python)
    pins = lockfile.applicable(lockfile.load(Path(p) for p in args.lock), facts.markers)
    signed = manifest.create(facts, pins, Path(args.wheelhouse), _read(args.key), _project(args))
    try:
        Path(args.out).write_bytes(signed)
    except OSError as exc:
        raise VerifyError(f"cannot write {args.out}: {exc.strerror}") from exc
    return []


def run_manifest_check(args: argparse.Namespace) -> list[Finding]:
    facts = gather(args.target_python)
    return manifest.check(facts, _read(args.manifest), _read(args.key), _project(args))


def _manifest_parsers(sub: Any, common: Common, env: Env) -> None:
    text = "signed install manifest: create at build time (with the wheelhouse), check at start"
    m = sub.add_parser("manifest", help=text, description=text)
    msub = m.add_subparsers(dest="manifest_command", required=True, metavar="ACTION")
    create = msub.add_parser("create", help="bind the installed set to the locked wheels; sign")
    check = msub.add_parser("check", help="verify the signature and every installed RECORD")
    for p in (create, check):
        p.add_argument(
            "--target-python",
            default=env("TARGET_PYTHON", sys.executable),
            help="interpreter whose environment is bound (env SEALGATE_VERIFY_TARGET_PYTHON)",
        )
        p.add_argument(
            "--project",
            default=env("PROJECT", "sealgate"),
            help="distribution left out (the project itself); env SEALGATE_VERIFY_PROJECT",
        )
        common(p)
    create.add_argument("--lock", action="append", default=None, help="lock file, repeatable")
    create.add_argument("--wheelhouse", required=True, help="the wheels installed from")
    create.add_argument("--key", required=True, help="ECDSA P-256 private key (PEM, PKCS#8)")
    create.add_argument("--out", required=True, help="manifest file to write")
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
        default=env("POLICIES", "policies"),
        help="policy directory (env SEALGATE_VERIFY_POLICIES; default ./policies)",
    )
    common(p)
    p.set_defaults(run=run_signature)
