"""Signatures against the real sigstore vectors (used in place, pinned by SHA256SUMS) and
cosign keyed signatures made here with ``cryptography``."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from verify import cli, signatures
from verify.findings import Status

GHO = "https://github.com/login/oauth"
GH = "https://token.actions.githubusercontent.com"
GOOG = "https://accounts.google.com"
DSSE_ID = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
VALID = [
    ("staging/bundle.txt", "staging/bundle.txt.sigstore", "a@tny.town", GHO),
    ("staging/bundle_v3.txt", "staging/bundle_v3.txt.sigstore", "william@yossarian.net", GHO),
    (
        "staging/bundle_v3_alt.txt",
        "staging/bundle_v3_alt.txt.sigstore",
        "william@yossarian.net",
        GHO,
    ),
    (
        "staging/staging-rekor-v2.txt",
        "staging/staging-rekor-v2.txt.sigstore.json",
        "jku@goto.fi",
        GHO,
    ),
    (
        "staging/tsa/bundle.txt",
        "staging/tsa/bundle.txt.sigstore",
        "alexis.challande@trailofbits.com",
        GOOG,
    ),
]
INVALID = [
    (
        "bundle_cve_2022_36056.txt",
        "bundle_cve_2022_36056.txt.sigstore",
        "william@yossarian.net",
        GHO,
    ),
    ("bundle_no_checkpoint.txt", "bundle_no_checkpoint.txt.sigstore", "william@yossarian.net", GHO),
    ("bundle_no_log_entry.txt", "bundle_no_log_entry.txt.sigstore", "william@yossarian.net", GHO),
    (
        "bundle_v3_no_signed_time.txt",
        "bundle_v3_no_signed_time.txt.sigstore.json",
        "william@yossarian.net",
        GHO,
    ),
    (
        "bundle_invalid_version.txt",
        "bundle_invalid_version.txt.sigstore",
        "william@yossarian.net",
        GHO,
    ),
    (
        "../staging/tsa/bundle.txt",
        "tsa_bundle.duplicate.sigstore",
        "alexis.challande@trailofbits.com",
        GOOG,
    ),
]


def staging(v: Path, identity: str, issuer: str) -> signatures.Identity:
    return signatures.Identity(identity, issuer, v / "trusted_root/staging.trusted_root.json")


@pytest.mark.vectors
def test_the_vectors_match_their_pinned_sha256sums(vectors: Path) -> None:
    for line in (vectors / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        path = vectors / name.lstrip("*").removeprefix("./")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, name


@pytest.mark.vectors
@pytest.mark.parametrize(("artifact", "bundle", "identity", "issuer"), VALID)
def test_every_valid_staging_bundle_verifies_against_the_pinned_root(
    vectors: Path, artifact: str, bundle: str, identity: str, issuer: str
) -> None:
    result = signatures.sigstore_bundle(
        artifact,
        (vectors / artifact).read_bytes(),
        (vectors / bundle).read_bytes(),
        staging(vectors, identity, issuer),
    )
    assert result.status is Status.OK, result.reason


@pytest.mark.vectors
@pytest.mark.parametrize(("artifact", "bundle", "identity", "issuer"), INVALID)
def test_every_invalid_bundle_is_rejected(
    vectors: Path, artifact: str, bundle: str, identity: str, issuer: str
) -> None:
    inv = vectors / "invalid"
    result = signatures.sigstore_bundle(
        bundle,
        (inv / artifact).read_bytes(),
        (inv / bundle).read_bytes(),
        staging(vectors, identity, issuer),
    )
    assert result.status is Status.FINDING


@pytest.mark.vectors
def test_the_old_cpython_bundle_without_checkpoint_is_rejected(vectors: Path) -> None:
    who = signatures.Identity(
        "thomas@python.org", GOOG, vectors / "trusted_root/production.trusted_root.json"
    )
    bundle = (vectors / "invalid/Python-3.12.5.tgz.sigstore").read_bytes()
    result = signatures.sigstore_bundle("Python-3.12.5.tgz", b"not the tarball", bundle, who)
    assert result.status is Status.FINDING
    assert "checkpoint" in result.reason


@pytest.mark.vectors
def test_a_tampered_artifact_is_rejected(vectors: Path) -> None:
    v3 = vectors / "staging/bundle_v3.txt"
    result = signatures.sigstore_bundle(
        "tampered",
        v3.read_bytes() + b"x",
        Path(f"{v3}.sigstore").read_bytes(),
        staging(vectors, "william@yossarian.net", GHO),
    )
    assert result.status is Status.FINDING and "digest mismatch" in result.reason


@pytest.mark.vectors
def test_a_bundle_for_another_artifact_is_rejected(vectors: Path) -> None:
    s = vectors / "staging"
    result = signatures.sigstore_bundle(
        "bundle.txt",
        (s / "bundle.txt").read_bytes(),
        (s / "bundle_v3.txt.sigstore").read_bytes(),
        staging(vectors, "william@yossarian.net", GHO),
    )
    assert result.status is Status.FINDING


@pytest.mark.vectors
@pytest.mark.parametrize(
    ("identity", "issuer"),
    [("someone@else", GHO), ("william@yossarian.net", GOOG)],
    ids=["wrong-signer", "wrong-issuer"],
)
def test_a_wrong_signer_identity_or_issuer_is_rejected(
    vectors: Path, identity: str, issuer: str
) -> None:
    v3 = vectors / "staging/bundle_v3.txt"
    result = signatures.sigstore_bundle(
        "v3",
        v3.read_bytes(),
        Path(f"{v3}.sigstore").read_bytes(),
        staging(vectors, identity, issuer),
    )
    assert result.status is Status.FINDING


@pytest.mark.vectors
def test_a_staging_bundle_does_not_verify_against_the_production_root(vectors: Path) -> None:
    v3 = vectors / "staging/bundle_v3.txt"
    who = signatures.Identity(
        "william@yossarian.net", GHO, vectors / "trusted_root/production.trusted_root.json"
    )
    result = signatures.sigstore_bundle(
        "v3", v3.read_bytes(), Path(f"{v3}.sigstore").read_bytes(), who
    )
    assert result.status is Status.FINDING


@pytest.mark.vectors
def test_a_github_repository_claim_other_than_the_certificates_is_rejected(vectors: Path) -> None:
    bundle = (vectors / "staging/a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes()
    who = signatures.Identity(
        DSSE_ID, GH, vectors / "trusted_root/staging.trusted_root.json", repository="evil/fork"
    )
    result = signatures.dsse_bundle("a", b"", bundle, who)
    assert result.status is Status.FINDING
    assert "does not verify" in result.reason


@pytest.mark.vectors
def test_a_dsse_statement_whose_subject_is_not_the_artifact_is_rejected(vectors: Path) -> None:
    s = vectors / "staging"
    result = signatures.dsse_bundle(
        "a.txt",
        (s / "a.dsse.staging-rekor-v2.txt").read_bytes(),
        (s / "a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes(),
        staging(vectors, DSSE_ID, GH),
    )
    assert result.status is Status.FINDING
    assert "signature verifies, but its statement does not name" in result.reason


@pytest.mark.vectors
def test_a_pep740_attestation_is_checked_as_the_dsse_bundle_it_carries(vectors: Path) -> None:
    # The vectors hold no PEP 740 attestation. Rewrite the DSSE vector into that shape: the
    # envelope and certificate carry over exactly, and since PEP 740 has no field for the RFC 3161
    # timestamp this Rekor v2 entry relies on, verification must fail closed.
    doc = json.loads((vectors / "staging/a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes())
    material, envelope = doc["verificationMaterial"], doc["dsseEnvelope"]
    attestation = {
        "version": 1,
        "verification_material": {
            "certificate": material["certificate"]["rawBytes"],
            "transparency_entries": material["tlogEntries"],
        },
        "envelope": {
            "statement": envelope["payload"],
            "signature": envelope["signatures"][0]["sig"],
        },
    }
    rewritten = json.loads(signatures.pep740_as_bundle(attestation))
    assert rewritten["dsseEnvelope"] == {
        "payload": envelope["payload"],
        "payloadType": envelope["payloadType"],
        "signatures": [{"sig": envelope["signatures"][0]["sig"]}],
    }
    assert rewritten["verificationMaterial"]["certificate"] == material["certificate"]
    result = signatures.pep740_attestation(
        "a.txt", b"x", "a.txt", json.dumps(attestation).encode(), staging(vectors, DSSE_ID, GH)
    )
    assert result.status is Status.FINDING
    statement = json.loads(base64.b64decode(envelope["payload"]))
    digest = statement["subject"][0]["digest"]["sha256"]
    assert signatures.statement_matches(statement, "a.txt", digest)
    assert not signatures.statement_matches(statement, "b.txt", digest)
    assert not signatures.statement_matches(statement, None, "0" * 64)


@pytest.mark.vectors
def test_the_signature_command_exits_0_on_a_valid_bundle_and_1_on_a_wrong_signer(
    vectors: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v3 = str(vectors / "staging/bundle_v3.txt")
    base = [
        "signature",
        v3,
        "--bundle",
        f"{v3}.sigstore",
        "--issuer",
        GHO,
        "--trusted-root",
        str(vectors / "trusted_root/staging.trusted_root.json"),
    ]
    assert cli.main([*base, "--identity", "william@yossarian.net"]) == 0
    assert cli.main([*base, "--identity", "someone@else"]) == 1
    assert cli.main(["signature", v3, "--bundle", f"{v3}.sigstore"]) == 2


def _cosign_key() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, pem


def test_a_cosign_blob_signature_verifies_and_a_tampered_blob_does_not() -> None:
    private, pem = _cosign_key()
    blob = b"sealgate-0.1.0-py3-none-any.whl bytes"
    sig = base64.b64encode(private.sign(blob, ec.ECDSA(hashes.SHA256())))
    assert signatures.cosign_blob("w", blob, sig, pem).passed
    assert not signatures.cosign_blob("w", blob + b"!", sig, pem).passed
    _, other = _cosign_key()
    assert not signatures.cosign_blob("w", blob, sig, other).passed


def test_a_cosign_keyed_bundle_checks_digest_and_signature() -> None:
    private, pem = _cosign_key()
    blob = b"artifact"
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": "test"}},
        "messageSignature": {
            "messageDigest": {
                "algorithm": "SHA2_256",
                "digest": base64.b64encode(hashlib.sha256(blob).digest()).decode(),
            },
            "signature": base64.b64encode(private.sign(blob, ec.ECDSA(hashes.SHA256()))).decode(),
        },
    }
    raw = json.dumps(bundle).encode()
    assert signatures.cosign_keyed_bundle("b", blob, raw, pem).passed
    assert "digest" in signatures.cosign_keyed_bundle("b", b"other", raw, pem).reason


def test_a_non_p256_cosign_key_is_refused() -> None:
    pem = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    from verify.findings import VerifyError

    with pytest.raises(VerifyError, match="P-256"):
        signatures.cosign_blob("b", b"x", b"AAAA", pem)


def test_the_shipped_trusted_signers_policy_loads(tmp_path: Path) -> None:
    from verify.policies import load_signers

    from .conftest import POLICIES

    assert load_signers(POLICIES) == {}
    (tmp_path / "trusted-signers.yaml").write_text(
        "version: 1\nsigners:\n  - name: x\n    idnetity: y\n"
    )
    from verify.findings import VerifyError

    with pytest.raises(VerifyError, match="unknown key 'idnetity'"):
        load_signers(tmp_path)


# -- legacy/: detached signature + Fulcio certificate, no log entry ---------------------------
def legacy(v: Path, name: str) -> tuple[bytes, bytes, bytes]:
    base = v / "legacy" / name
    return base.read_bytes(), Path(f"{base}.sig").read_bytes(), Path(f"{base}.crt").read_bytes()


@pytest.mark.vectors
def test_the_legacy_detached_signature_verifies_with_its_fulcio_certificate(vectors: Path) -> None:
    artifact, sig, cert = legacy(vectors, "a.txt")
    who = staging(vectors, "william@yossarian.net", GHO)
    result = signatures.detached_certificate("a.txt", artifact, sig, cert, who)
    assert result.status is Status.OK
    assert "not proven" in result.reason  # no log entry: the result says what it cannot prove


@pytest.mark.vectors
def test_the_legacy_signature_over_altered_content_is_rejected(vectors: Path) -> None:
    artifact, sig, cert = legacy(vectors, "bad.txt")
    who = staging(vectors, "william@yossarian.net", GHO)
    result = signatures.detached_certificate("bad.txt", artifact, sig, cert, who)
    assert result.status is Status.FINDING
    assert "does not verify" in result.reason


@pytest.mark.vectors
@pytest.mark.parametrize(
    ("identity", "issuer", "root", "why"),
    [
        ("someone@else", GHO, "staging", "identity"),
        ("william@yossarian.net", GOOG, "staging", "issuer"),
        ("william@yossarian.net", GHO, "production", "does not chain"),
    ],
)
def test_the_legacy_certificate_must_name_the_signer_and_chain_to_the_pinned_root(
    vectors: Path, identity: str, issuer: str, root: str, why: str
) -> None:
    artifact, sig, cert = legacy(vectors, "a.txt")
    who = signatures.Identity(identity, issuer, vectors / f"trusted_root/{root}.trusted_root.json")
    result = signatures.detached_certificate("a.txt", artifact, sig, cert, who)
    assert result.status is Status.FINDING
    assert why in result.reason


@pytest.mark.vectors
def test_the_signature_command_verifies_a_detached_certificate_signature(vectors: Path) -> None:
    a = str(vectors / "legacy/a.txt")
    detached = ["--signature", f"{a}.sig", "--certificate", f"{a}.crt"]
    root = [
        "--issuer",
        GHO,
        "--trusted-root",
        str(vectors / "trusted_root/staging.trusted_root.json"),
    ]
    assert cli.main(["signature", a, *detached, *root, "--identity", "william@yossarian.net"]) == 0
    bad = str(vectors / "legacy/bad.txt")
    assert (
        cli.main(["signature", bad, *detached, *root, "--identity", "william@yossarian.net"]) == 1
    )
