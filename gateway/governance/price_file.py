"""The operator's own price file: signed, verified at start-up, never fetched.

    governance:
      price_file: /etc/sealgate/prices.json    # the bundled format; its rows replace those
      price_key: /etc/sealgate/prices.pub.pem  # the P-256 public key it must be signed with

The file is checked the way the policy bundle is (``verify.policy_bundle``): its signature,
``<price_file>.sig``, is base64 DER ECDSA P-256 over SHA-256 of the file's exact bytes (the cosign
keyed format, so ``cosign sign-blob --key`` or ``openssl dgst -sha256 -sign`` make one), and it is
verified with the pinned public key by ``verify.p256`` before a byte of the file is parsed. A file
without a signature, with one that does not verify, or that does not parse as a price table
refuses start-up with a ConfigError saying which. Its rows then replace the bundled table's rows of
the same model (``PriceTable.overlaid``); the bundled rows it does not name stay.

The table is read once, at start-up; a reload keeps it (change the file, re-sign, restart).

    python -m gateway.governance.price_file sign  --file prices.json --key signing-key.pem
    python -m gateway.governance.price_file check --file prices.json --key signing-key.pub.pem
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from pathlib import Path

from gateway.config.governance import Governance as GovernanceSettings
from gateway.errors import ConfigError
from gateway.governance.pricing import PriceTable
from verify import p256

SIGNATURE_SUFFIX = ".sig"
KEY = "governance.price_file"


def signature_path(path: Path) -> Path:
    return path.with_name(path.name + SIGNATURE_SUFFIX)


def load(path: Path, key_path: Path, source: str = "config") -> PriceTable:
    """The price table in ``path``, once its signature verifies with the key in ``key_path``."""

    def refuse(problem: str) -> ConfigError:
        return ConfigError(source, KEY, f"{path}: {problem}; start-up refused")

    try:
        key = p256.load_pem_public_key(key_path.read_bytes())
    except OSError as exc:
        raise ConfigError(
            source, "governance.price_key", f"{key_path} cannot be read: {exc.strerror}"
        ) from None
    except p256.InvalidKey as exc:
        raise ConfigError(
            source, "governance.price_key", f"{key_path} is not an ECDSA P-256 public key: {exc}"
        ) from None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise refuse(f"cannot be read ({exc.strerror})") from None
    try:
        signature = base64.b64decode(signature_path(path).read_bytes().strip(), validate=True)
    except OSError:
        raise refuse(f"is not signed (no {signature_path(path).name} beside it)") from None
    except (ValueError, binascii.Error):
        raise refuse(f"its signature {signature_path(path).name} is not base64") from None
    if not p256.verify(key, signature, data):
        raise refuse(
            "its signature does not verify with governance.price_key (changed since it was "
            "signed, or signed with another key)"
        )
    try:
        return PriceTable.parse(json.loads(data))
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise refuse(f"is not a price table: {exc}") from None


def price_table(settings: GovernanceSettings, source: str = "config") -> PriceTable:
    """The bundled table, with the operator's verified price file over it when one is set."""
    table = PriceTable.bundled()
    if settings.price_file is None:
        return table
    assert settings.price_key is not None  # the config refuses a price file without its key
    return table.overlaid(load(Path(settings.price_file), Path(settings.price_key), source))


def sign(path: Path, private_key_pem: bytes) -> Path:
    """Write ``<path>.sig`` (cryptography does the signing; only the operator's tools need it)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("the signing key must be an ECDSA P-256 private key (PEM)")
    signature = key.sign(path.read_bytes(), ec.ECDSA(hashes.SHA256()))
    out = signature_path(path)
    out.write_bytes(base64.b64encode(signature) + b"\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.governance.price_file")
    parser.add_argument("command", choices=("sign", "check"))
    parser.add_argument("--file", required=True, help="the price file (JSON)")
    parser.add_argument("--key", required=True, help="PEM private key (sign) or public key")
    args = parser.parse_args(argv)
    try:
        if args.command == "sign":
            print(f"signed: {sign(Path(args.file), Path(args.key).read_bytes())}")
            return 0
        table = load(Path(args.file), Path(args.key), "check")
    except (OSError, ValueError, ConfigError) as exc:
        print(f"price file: {exc}", file=sys.stderr)
        return 1
    print(f"ok: {len(table.models)} model prices, taken {table.taken}, signature verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
