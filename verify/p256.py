"""ECDSA P-256 / SHA-256 signature verification in pure Python: verification only.

Why this exists: the start-up check must verify the signed install manifest *before* it may
import anything from the environment it is checking, and ``cryptography`` is in that
environment. Verification handles only public data (key, message, signature), so it needs none
of the defences a signer needs (constant time, nonce generation); what it needs is to be exact
and strict, and this module is both:

- the public key is a DER SubjectPublicKeyInfo (PEM ``PUBLIC KEY``) whose algorithm is exactly
  id-ecPublicKey with the prime256v1 curve; the point (SEC1, uncompressed or compressed) must
  have coordinates below p, lie on the curve, and not be the point at infinity (the curve has
  cofactor 1, so every such point is in the prime-order group);
- the signature is a DER ``SEQUENCE { INTEGER r, INTEGER s }`` in minimal encoding with no
  trailing bytes, and r and s must both be in [1, n-1];
- the check is the textbook one (SEC 1 v2, section 4.1.4): e = SHA-256(message) as an integer
  (256 bits, the size of n, so no truncation), w = s^-1, R = (e*w)G + (r*w)Q, valid only when R
  is not the point at infinity and R.x mod n == r.

Tests cross-check every decision against ``cryptography`` (OpenSSL) on thousands of signatures,
tampered ones and malformed encodings (tests/verify/test_p256.py). Signing is not here: keys are
made and used by ``cryptography`` at build time, where the environment is being created.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
A = P - 3
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)
# AlgorithmIdentifier { id-ecPublicKey (1.2.840.10045.2.1), prime256v1 (1.2.840.10045.3.1.7) }
_ALGORITHM = bytes.fromhex("301306072a8648ce3d020106082a8648ce3d030107")
_PEM_HEAD, _PEM_TAIL = b"-----BEGIN PUBLIC KEY-----", b"-----END PUBLIC KEY-----"

Affine = tuple[int, int]
Jacobian = tuple[int, int, int]  # (X, Y, Z): x = X/Z^2, y = Y/Z^3; Z == 0 is infinity
_INFINITY: Jacobian = (1, 1, 0)


class InvalidKey(ValueError):
    """The bytes are not an ECDSA P-256 public key."""


@dataclass(frozen=True)
class PublicKey:
    x: int
    y: int


def on_curve(x: int, y: int) -> bool:
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


def _point(data: bytes) -> PublicKey:
    """A SEC1 encoded point: 04 || X || Y, or 02/03 || X."""
    if len(data) == 65 and data[0] == 4:
        x, y = int.from_bytes(data[1:33], "big"), int.from_bytes(data[33:], "big")
    elif len(data) == 33 and data[0] in (2, 3):
        x = int.from_bytes(data[1:], "big")
        if x >= P:
            raise InvalidKey("point x coordinate is not below p")
        y = pow((x * x * x + A * x + B) % P, (P + 1) // 4, P)  # p = 3 mod 4
        if (y * y) % P != (x * x * x + A * x + B) % P:
            raise InvalidKey("compressed point is not on the curve")
        if y % 2 != data[0] % 2:
            y = P - y
    else:
        raise InvalidKey("not an uncompressed or compressed P-256 point")
    if not on_curve(x, y):
        raise InvalidKey("point is not on the P-256 curve")
    return PublicKey(x, y)


def _der(data: bytes, offset: int, tag: int) -> tuple[bytes, int]:
    """One DER TLV with ``tag`` at ``offset``: (content, offset after it). Minimal lengths."""
    if offset + 2 > len(data) or data[offset] != tag:
        raise ValueError(f"expected DER tag {tag:#x}")
    length, offset = data[offset + 1], offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count not in (1, 2) or offset + count > len(data):
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[offset : offset + count], "big")
        if length < 0x80 or (count == 2 and length < 0x100):
            raise ValueError("DER length is not minimal")
        offset += count
    if offset + length > len(data):
        raise ValueError("DER value runs past the end")
    return data[offset : offset + length], offset + length


def public_key_from_der(der: bytes) -> PublicKey:
    try:
        spki, end = _der(der, 0, 0x30)
        if end != len(der):
            raise ValueError("trailing bytes after the key")
        _, at = _der(spki, 0, 0x30)
        if spki[:at] != _ALGORITHM:
            raise InvalidKey("not an id-ecPublicKey key on prime256v1")
        bits, end = _der(spki, at, 0x03)
        if end != len(spki) or not bits or bits[0] != 0:
            raise ValueError("malformed public key BIT STRING")
    except InvalidKey:
        raise
    except ValueError as exc:
        raise InvalidKey(f"not a DER SubjectPublicKeyInfo: {exc}") from None
    return _point(bits[1:])


def load_pem_public_key(pem: bytes) -> PublicKey:
    """A PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo) holding an ECDSA P-256 key."""
    text = pem.strip()
    if not (text.startswith(_PEM_HEAD) and text.endswith(_PEM_TAIL)):
        raise InvalidKey("not a PEM 'PUBLIC KEY' block")
    body = b"".join(text[len(_PEM_HEAD) : -len(_PEM_TAIL)].split())
    try:
        der = base64.b64decode(body, validate=True)
    except binascii.Error as exc:
        raise InvalidKey(f"PEM body is not base64: {exc}") from None
    return public_key_from_der(der)


def _integer(data: bytes, offset: int) -> tuple[int, int]:
    value, offset = _der(data, offset, 0x02)
    if not value or value[0] & 0x80:
        raise ValueError("INTEGER is empty or negative")
    if len(value) > 1 and value[0] == 0 and not value[1] & 0x80:
        raise ValueError("INTEGER is not minimally encoded")
    return int.from_bytes(value, "big"), offset


def parse_signature(signature: bytes) -> tuple[int, int]:
    """DER ``SEQUENCE { r INTEGER, s INTEGER }``; ValueError unless strictly encoded."""
    body, end = _der(signature, 0, 0x30)
    if end != len(signature):
        raise ValueError("trailing bytes after the signature")
    r, at = _integer(body, 0)
    s, at = _integer(body, at)
    if at != len(body):
        raise ValueError("trailing bytes inside the signature")
    return r, s


def _double(p: Jacobian) -> Jacobian:
    x, y, z = p
    if z == 0 or y == 0:
        return _INFINITY
    yy = y * y % P
    s = 4 * x * yy % P
    zz = z * z % P
    m = 3 * (x - zz) * (x + zz) % P  # a = -3
    x3 = (m * m - 2 * s) % P
    return x3, (m * (s - x3) - 8 * yy * yy) % P, 2 * y * z % P


def _add_affine(p: Jacobian, q: Affine) -> Jacobian:
    """p + q, with q an affine point (Z = 1), not infinity."""
    x1, y1, z1 = p
    if z1 == 0:
        return q[0], q[1], 1
    zz = z1 * z1 % P
    u2 = q[0] * zz % P
    s2 = q[1] * zz * z1 % P
    h = (u2 - x1) % P
    r = (s2 - y1) % P
    if h == 0:
        return _double(p) if r == 0 else _INFINITY
    hh = h * h % P
    hhh = h * hh % P
    v = x1 * hh % P
    x3 = (r * r - hhh - 2 * v) % P
    return x3, (r * (v - x3) - y1 * hhh) % P, z1 * h % P


def _affine(p: Jacobian) -> Affine | None:
    x, y, z = p
    if z == 0:
        return None
    zi = pow(z, -1, P)
    zi2 = zi * zi % P
    return x * zi2 % P, y * zi2 * zi % P


def _combination(u1: int, g: Affine, u2: int, q: Affine) -> Jacobian:
    """u1*g + u2*q by one left-to-right pass over both scalars (Shamir's trick)."""
    both = _affine(_add_affine((g[0], g[1], 1), q))
    acc = _INFINITY
    for bit in range(max(u1.bit_length(), u2.bit_length()) - 1, -1, -1):
        acc = _double(acc)
        a, b = (u1 >> bit) & 1, (u2 >> bit) & 1
        if a and b:
            if both is not None:  # g + q is infinity when q == -g: adding it changes nothing
                acc = _add_affine(acc, both)
        elif a:
            acc = _add_affine(acc, g)
        elif b:
            acc = _add_affine(acc, q)
    return acc


def verify(key: PublicKey, signature: bytes, message: bytes) -> bool:
    """True only when ``signature`` (DER) is a valid ECDSA P-256 signature of SHA-256(message)."""
    if not on_curve(key.x, key.y):
        return False
    try:
        r, s = parse_signature(signature)
    except ValueError:
        return False
    if not (1 <= r < N and 1 <= s < N):
        return False
    e = int.from_bytes(hashlib.sha256(message).digest(), "big")
    w = pow(s, -1, N)
    point = _affine(_combination(e * w % N, G, r * w % N, (key.x, key.y)))
    return point is not None and point[0] % N == r
