"""Signatures, verified offline: sigstore bundles, DSSE/in-toto statements, PEP 740
attestations, and cosign keyed signatures.

Trust is pinned, never fetched: sigstore verification uses a trusted root read from a file
(``TrustedRoot.from_file``), never ``Verifier.production()`` and never the TUF cache. Every
keyless check has an identity *and* issuer policy (plus GitHub workflow repository / ref claims
when the signer names them), and every signed digest is compared with the artifact's own.
Each function returns one finding; a verification failure is a finding, never an exception.

Not proved here: transparency-log inclusion for cosign keyed signatures (offline, keyed
bundles are checked for the signature and digest only).

Keyed (cosign) signatures are verified with ``verify.p256`` (standard library only); the keyless
paths import ``sigstore`` and ``cryptography`` when they run, never when this module is imported,
so the environment checks that import ``verify`` never load them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verify import p256
from verify.findings import Finding, Severity, VerifyError, finding, ok

CHECK = "signature"
IN_TOTO = "application/vnd.in-toto+json"
REMEDY = "do not use this artifact; obtain it again from its publisher and re-verify"


@dataclass(frozen=True)
class Identity:
    """Who must have signed: certificate identity, OIDC issuer, optional GitHub claims."""

    identity: str
    issuer: str
    trusted_root: Path
    repository: str | None = None
    ref: str | None = None


def _verifier_and_policy(who: Identity) -> tuple[Any, Any]:
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier, policy

    try:
        root = TrustedRoot.from_file(str(who.trusted_root))
    except (OSError, ValueError) as exc:
        raise VerifyError(f"cannot load trusted root {who.trusted_root}: {exc}") from exc
    rules: list[Any] = [policy.Identity(identity=who.identity, issuer=who.issuer)]
    if who.repository is not None:
        rules.append(policy.GitHubWorkflowRepository(who.repository))
    if who.ref is not None:
        rules.append(policy.GitHubWorkflowRef(who.ref))
    return Verifier(trusted_root=root), policy.AllOf(rules)


def _fail(subject: str, why: str) -> Finding:
    return finding(CHECK, subject, Severity.CRITICAL, why, REMEDY)


def sigstore_bundle(subject: str, artifact: bytes, bundle: bytes, who: Identity) -> Finding:
    """A keyless sigstore bundle over ``artifact`` signed by ``who``."""
    from sigstore.errors import Error
    from sigstore.models import Bundle

    verifier, rules = _verifier_and_policy(who)
    try:
        verifier.verify_artifact(artifact, Bundle.from_json(bundle), rules)
    except Error as exc:
        return _fail(subject, f"sigstore bundle does not verify: {exc}")
    return ok(CHECK, subject, f"sigstore bundle verifies; signed by {who.identity} ({who.issuer})")


def statement_matches(statement: dict[str, Any], name: str | None, sha256: str) -> bool:
    """True when some in-toto subject has ``sha256`` (and, if given, ``name``)."""
    for item in statement.get("subject", []):
        digest = item.get("digest", {}) if isinstance(item, dict) else {}
        if digest.get("sha256") == sha256 and (name is None or item.get("name") == name):
            return True
    return False


def dsse_bundle(
    subject: str, artifact: bytes, bundle: bytes, who: Identity, name: str | None = None
) -> Finding:
    """A sigstore DSSE bundle whose in-toto statement must name the artifact's sha256."""
    from sigstore.errors import Error
    from sigstore.models import Bundle

    verifier, rules = _verifier_and_policy(who)
    try:
        payload_type, payload = verifier.verify_dsse(Bundle.from_json(bundle), rules)
    except Error as exc:
        return _fail(subject, f"DSSE bundle does not verify: {exc}")
    return _check_statement(subject, artifact, payload_type, payload, who, name)


def _check_statement(
    subject: str,
    artifact: bytes,
    payload_type: str,
    payload: bytes,
    who: Identity,
    name: str | None,
) -> Finding:
    if payload_type != IN_TOTO:
        return _fail(subject, f"signed payload is {payload_type!r}, not an in-toto statement")
    try:
        statement = json.loads(payload)
    except ValueError:
        return _fail(subject, "signed in-toto statement is not JSON")
    digest = hashlib.sha256(artifact).hexdigest()
    if not isinstance(statement, dict) or not statement_matches(statement, name, digest):
        return _fail(
            subject, f"signature verifies, but its statement does not name sha256 {digest}"
        )
    return ok(CHECK, subject, f"signed statement names this artifact; signed by {who.identity}")


def pep740_as_bundle(attestation: dict[str, Any]) -> bytes:
    """A PEP 740 attestation object rewritten as the sigstore v0.3 DSSE bundle it carries."""
    try:
        material = attestation["verification_material"]
        envelope = attestation["envelope"]
        doc = {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": material["certificate"]},
                "tlogEntries": material["transparency_entries"],
            },
            "dsseEnvelope": {
                "payload": envelope["statement"],
                "payloadType": IN_TOTO,
                "signatures": [{"sig": envelope["signature"]}],
            },
        }
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a PEP 740 attestation: missing {exc}") from exc
    return json.dumps(doc).encode()


def pep740_attestation(
    subject: str, wheel: bytes, filename: str, attestation: bytes, who: Identity
) -> Finding:
    """A PEP 740 attestation for a distribution file: statement subject = filename + sha256."""
    try:
        bundle = pep740_as_bundle(json.loads(attestation))
    except ValueError as exc:
        return _fail(subject, str(exc))
    return dsse_bundle(subject, wheel, bundle, who, name=filename)


def load_p256_key(pem: bytes) -> p256.PublicKey:
    try:
        return p256.load_pem_public_key(pem)
    except p256.InvalidKey as exc:
        raise VerifyError(f"the key must be an ECDSA P-256 public key (PEM): {exc}") from exc


def cosign_blob(subject: str, artifact: bytes, signature_b64: bytes, key_pem: bytes) -> Finding:
    """``cosign sign-blob --key``: base64 DER ECDSA P-256 over SHA-256 of the artifact."""
    key = load_p256_key(key_pem)
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
    except ValueError:
        signature = b""
    if not p256.verify(key, signature, artifact):
        return _fail(subject, "cosign signature does not verify with the pinned key")
    return ok(CHECK, subject, "cosign signature verifies with the pinned P-256 key")


def cosign_keyed_bundle(subject: str, artifact: bytes, bundle: bytes, key_pem: bytes) -> Finding:
    """A keyed sigstore bundle (``cosign sign-blob --key --new-bundle-format``).

    Checks the message digest against the artifact and the signature against the pinned key.
    """
    try:
        doc = json.loads(bundle)
        message = doc["messageSignature"]
        digest = message["messageDigest"]
        claimed = base64.b64decode(digest["digest"])
        signature = message["signature"].encode()
    except (ValueError, KeyError, TypeError):
        return _fail(subject, "not a keyed sigstore bundle with a message signature")
    if digest.get("algorithm") != "SHA2_256" or claimed != hashlib.sha256(artifact).digest():
        return _fail(subject, "bundle's message digest is not this artifact's sha256")
    return cosign_blob(subject, artifact, signature, key_pem)


# -- detached signature + Fulcio certificate, no log entry --------------------------------------
_OIDC_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"  # raw UTF-8 value
_OIDC_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"  # DER UTF8String


def _issuer_claim(cert: Any) -> str | None:
    from cryptography import x509

    for dotted, der in ((_OIDC_ISSUER_V2, True), (_OIDC_ISSUER_V1, False)):
        try:
            value = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(dotted)).value
        except x509.ExtensionNotFound:
            continue
        raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
        if der and len(raw) >= 2 and raw[0] == 0x0C:  # UTF8String tag, short length
            raw = raw[2:]
        return bytes(raw).decode("utf-8", errors="replace")
    return None


def _chain_problem(leaf: Any, cas: list[Any]) -> str | None:
    """None when ``leaf`` chains to one of the Fulcio ``cas`` (each valid at the leaf's
    notBefore); otherwise why not."""
    from cryptography.exceptions import InvalidSignature

    at = leaf.not_valid_before_utc
    current = leaf
    for _ in range(len(cas) + 1):
        issuer = None
        for ca in cas:
            try:
                current.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                continue
            issuer = ca
            break
        if issuer is None:
            return f"{current.issuer.rfc4514_string()} is not a Fulcio CA of the trusted root"
        if not issuer.not_valid_before_utc <= at <= issuer.not_valid_after_utc:
            return f"{issuer.subject.rfc4514_string()} was not valid at {at.isoformat()}"
        if issuer.issuer == issuer.subject:
            return None
        current = issuer
    return "certificate chain too long"


def detached_certificate(
    subject: str, artifact: bytes, signature_b64: bytes, cert_pem: bytes, who: Identity
) -> Finding:
    """A detached signature with its Fulcio certificate and no log entry (the old ``cosign
    sign-blob --output-signature --output-certificate`` layout): the signature verifies with the
    certificate's key, the certificate names the signer (SAN and issuer claim) and chains to a
    Fulcio CA of the pinned trust root. With no log entry, the signing time (taken as the
    certificate's notBefore) and publication are not proved; the result says so."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from sigstore.models import TrustedRoot

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        signature = base64.b64decode(signature_b64.strip(), validate=True)
    except ValueError as exc:
        return _fail(subject, f"unreadable certificate or signature: {exc}")
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return _fail(subject, "the certificate's key is not an ECDSA key")
    try:
        key.verify(signature, artifact, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return _fail(subject, "the signature does not verify with the certificate's key")
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return _fail(subject, "the certificate has no subject alternative name")
    names = [str(n) for n in san.get_values_for_type(x509.RFC822Name)]
    names += [str(n) for n in san.get_values_for_type(x509.UniformResourceIdentifier)]
    if who.identity not in names:
        return _fail(subject, f"certificate identity {names} is not {who.identity!r}")
    issuer = _issuer_claim(cert)
    if issuer != who.issuer:
        return _fail(subject, f"certificate issuer {issuer!r} is not {who.issuer!r}")
    try:
        root = TrustedRoot.from_file(str(who.trusted_root))
    except (OSError, ValueError) as exc:
        raise VerifyError(f"cannot load trusted root {who.trusted_root}: {exc}") from exc
    problem = _chain_problem(cert, list(root.get_fulcio_certs()))
    if problem is not None:
        return _fail(subject, f"the certificate does not chain to the pinned root: {problem}")
    return ok(
        CHECK,
        subject,
        f"signature verifies with a Fulcio certificate for {who.identity} ({who.issuer}); "
        "no transparency-log entry, so signing time and publication are not proven",
    )
