"""verify.p256 decides every signature as cryptography (OpenSSL) decides it.

Thousands of real signatures, tampered ones and malformed encodings: for each, the pure-Python
verifier the start-up check uses and OpenSSL must agree.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from verify import p256

KEYS, MESSAGES = 40, 50  # 2000 signatures, and as many tampered ones


def openssl(key: ec.EllipticCurvePublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def signed() -> Iterator[tuple[ec.EllipticCurvePrivateKey, p256.PublicKey, bytes, bytes]]:
    rng = random.Random(2026)
    for _ in range(KEYS):
        private = ec.generate_private_key(ec.SECP256R1())
        public = p256.load_pem_public_key(pem(private.public_key()))
        for _ in range(MESSAGES):
            message = rng.randbytes(rng.randrange(0, 200))
            yield private, public, message, private.sign(message, ec.ECDSA(hashes.SHA256()))


def test_thousands_of_signatures_verify_and_their_tampered_forms_do_not_as_openssl_says() -> None:
    rng = random.Random(7)
    other = p256.load_pem_public_key(pem(ec.generate_private_key(ec.SECP256R1()).public_key()))
    checked = 0
    for private, public, message, signature in signed():
        key = private.public_key()
        assert p256.verify(public, signature, message) and openssl(key, signature, message)
        r, s = decode_dss_signature(signature)
        flipped = bytearray(message or b"\0")
        flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        variants = [
            (public, signature, bytes(flipped)),
            (other, signature, message),
            (public, encode_dss_signature(r, (s + 1) % p256.N or 1), message),
            (public, encode_dss_signature(r, p256.N - s), message),  # the other valid s
        ]
        for pub, sig, msg in variants:
            expected = openssl(key if pub is public else _crypto_key(pub), sig, msg)
            assert p256.verify(pub, sig, msg) is expected
            checked += 1
    assert checked == 4 * KEYS * MESSAGES


def _crypto_key(key: p256.PublicKey) -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicNumbers(key.x, key.y, ec.SECP256R1()).public_key()


def _der_int(value: bytes) -> bytes:
    return b"\x02" + bytes([len(value)]) + value


def _seq(body: bytes) -> bytes:
    return b"\x30" + bytes([len(body)]) + body


@pytest.fixture(scope="module")
def sample() -> tuple[ec.EllipticCurvePrivateKey, bytes, int, int]:
    private = ec.generate_private_key(ec.SECP256R1())
    message = b"sealgate manifest"
    while True:  # a signature whose r and s need no leading zero, so edits stay in length
        r, s = decode_dss_signature(private.sign(message, ec.ECDSA(hashes.SHA256())))
        if r.bit_length() < 256 and s.bit_length() < 256 and r.bit_length() > 248:
            return private, message, r, s


def _malformed(r: int, s: int) -> dict[str, bytes]:
    rb, sb = r.to_bytes(32, "big").lstrip(b"\0"), s.to_bytes(32, "big").lstrip(b"\0")
    good = _seq(_der_int(rb) + _der_int(sb))
    high = (p256.N - 1).to_bytes(32, "big")
    return {
        "good": good,
        "leading zero on r": _seq(_der_int(b"\0" + rb) + _der_int(sb)),
        "negative r": _seq(_der_int(bytes([rb[0] | 0x80]) + rb[1:]) + _der_int(sb)),
        "r = 0": _seq(_der_int(b"\0") + _der_int(sb)),
        "s = 0": _seq(_der_int(rb) + _der_int(b"\0")),
        "r = n": _seq(_der_int(b"\0" + p256.N.to_bytes(32, "big")) + _der_int(sb)),
        "s = n - 1 (in range, wrong)": _seq(_der_int(rb) + _der_int(b"\0" + high)),
        "trailing byte after the sequence": good + b"\0",
        "trailing byte inside the sequence": _seq(_der_int(rb) + _der_int(sb) + b"\0"),
        "long-form length (BER)": b"\x30\x81" + bytes([len(good) - 2]) + good[2:],
        "wrong outer tag": b"\x31" + good[1:],
        "wrong integer tag": _seq(b"\x03" + _der_int(rb)[1:] + _der_int(sb)),
        "truncated": good[:-1],
        "empty": b"",
        "only r": _seq(_der_int(rb)),
        "r and s swapped": _seq(_der_int(sb) + _der_int(rb)),
    }


def test_malformed_and_out_of_range_signature_encodings_are_refused_as_openssl_refuses_them(
    sample: tuple[ec.EllipticCurvePrivateKey, bytes, int, int],
) -> None:
    private, message, r, s = sample
    key = p256.load_pem_public_key(pem(private.public_key()))
    decisions = {
        name: (p256.verify(key, sig, message), openssl(private.public_key(), sig, message))
        for name, sig in _malformed(r, s).items()
    }
    assert decisions.pop("good") == (True, True)
    assert decisions == {name: (False, False) for name in decisions}


def test_a_compressed_point_loads_to_the_same_key_as_the_uncompressed_one() -> None:
    for _ in range(20):
        public = ec.generate_private_key(ec.SECP256R1()).public_key()
        compressed = public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        )
        assert p256.public_key_from_der(_spki(compressed)) == p256.load_pem_public_key(pem(public))


def _spki(point: bytes) -> bytes:
    algorithm = bytes.fromhex("301306072a8648ce3d020106082a8648ce3d030107")
    bits = b"\x03" + bytes([len(point) + 1]) + b"\0" + point
    body = algorithm + bits
    return b"\x30" + bytes([len(body)]) + body


@pytest.mark.parametrize(
    "point",
    [
        b"\x04" + (1).to_bytes(32, "big") + (1).to_bytes(32, "big"),  # not on the curve
        b"\x04" + p256.P.to_bytes(32, "big") + p256.G[1].to_bytes(32, "big"),  # x = p
        b"\x00",  # the point at infinity
        b"\x04" + p256.G[0].to_bytes(32, "big"),  # short
        b"\x02" + (1).to_bytes(32, "big"),  # x = 1: x^3 - 3x + b is no square mod p
    ],
    ids=["off-curve", "x-is-p", "infinity", "short", "no-such-x"],
)
def test_a_public_key_off_the_curve_or_at_infinity_is_refused_as_openssl_refuses_it(
    point: bytes,
) -> None:
    der = _spki(point)
    with pytest.raises(p256.InvalidKey):
        p256.public_key_from_der(der)
    with pytest.raises(ValueError):
        serialization.load_der_public_key(der)


def test_a_key_of_another_curve_or_algorithm_is_refused() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(p256.InvalidKey, match="prime256v1"):
        p256.load_pem_public_key(pem(p384))
    with pytest.raises(p256.InvalidKey, match="PUBLIC KEY"):
        p256.load_pem_public_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    good = pem(ec.generate_private_key(ec.SECP256R1()).public_key())
    with pytest.raises(p256.InvalidKey, match="base64"):
        p256.load_pem_public_key(good.replace(b"\n", b"\n!", 1))


def test_a_key_whose_point_was_edited_after_loading_verifies_nothing(
    sample: tuple[ec.EllipticCurvePrivateKey, bytes, int, int],
) -> None:
    _, message, r, s = sample
    signature = encode_dss_signature(r, s)
    assert not p256.verify(p256.PublicKey(1, 1), signature, message)
    assert not p256.verify(p256.PublicKey(*p256.G), signature, message)
