"""Load the verifier's policy files from ``policies/``, strictly.

Unknown keys, missing keys and wrong types are ``VerifyError``s that name the file, the key and
what was expected: a policy that does not validate stops the run (fail closed). The files are
read with ``verify.yamlsubset`` (standard library only), not PyYAML: the environment checks must
not import code from the environment they check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verify import yamlsubset
from verify.findings import VerifyError

PTH_ALLOWLIST = "pth-allowlist.yaml"
TRUSTED_SIGNERS = "trusted-signers.yaml"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class AllowedPth:
    name: str
    owner: str
    sha256: str
    why: str


@dataclass(frozen=True)
class AllowedHook:
    module: str
    sha256: str
    why: str


@dataclass(frozen=True)
class PthPolicy:
    pth: tuple[AllowedPth, ...]
    hooks: tuple[AllowedHook, ...]


@dataclass(frozen=True)
class Signer:
    name: str
    identity: str
    issuer: str
    trusted_root: Path
    repository: str | None = None
    ref: str | None = None


def _load(path: Path) -> Any:
    try:
        return yamlsubset.load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise VerifyError(f"cannot read policy {path}: {exc.strerror}") from exc
    except (yamlsubset.YamlError, UnicodeDecodeError) as exc:
        raise VerifyError(
            f"policy {path} is not valid YAML of the supported subset: {exc}"
        ) from exc


def _mapping(value: Any, where: str, keys: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise VerifyError(f"{where}: expected a mapping")
    unknown = sorted(set(value) - keys)
    if unknown:
        raise VerifyError(f"{where}: unknown key {unknown[0]!r} (expected one of {sorted(keys)})")
    missing = sorted(required - set(value))
    if missing:
        raise VerifyError(f"{where}: missing key {missing[0]!r}")
    for key, item in value.items():
        if key != "version" and item is not None and not isinstance(item, str | list):
            raise VerifyError(f"{where}.{key}: expected a string")
    return value


def _sha(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise VerifyError(f"{where}: expected 64 lowercase hex digits (sha256)")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise VerifyError(f"{where}: expected a list")
    return value


def default_dir() -> Path:
    """The policy directory when none is named: ``policies/`` beside the project (the directory
    holding the ``verify`` and ``gateway`` packages). ``sealgate serve``, the launcher and
    ``sealgate verify`` all use this one rule, wherever they are run from; the environment
    variable SEALGATE_VERIFY_POLICIES, ``--policies`` or ``verify.policies_dir`` name another."""
    return Path(__file__).resolve().parent.parent / "policies"


def load_pth_policy(policies_dir: Path) -> PthPolicy:
    path = policies_dir / PTH_ALLOWLIST
    doc = _mapping(_load(path), str(path), {"version", "pth", "hooks"}, {"version", "pth"})
    if doc["version"] not in (1, "1"):
        raise VerifyError(f"{path}: version: expected 1")
    pth = []
    for i, item in enumerate(_list(doc["pth"], f"{path}: pth")):
        where = f"{path}: pth[{i}]"
        entry = _mapping(
            item, where, {"name", "owner", "sha256", "why"}, {"name", "owner", "sha256", "why"}
        )
        pth.append(
            AllowedPth(
                entry["name"],
                entry["owner"],
                _sha(entry["sha256"], f"{where}.sha256"),
                entry["why"],
            )
        )
    hooks = []
    for i, item in enumerate(_list(doc.get("hooks"), f"{path}: hooks")):
        where = f"{path}: hooks[{i}]"
        entry = _mapping(item, where, {"module", "sha256", "why"}, {"module", "sha256", "why"})
        hooks.append(
            AllowedHook(entry["module"], _sha(entry["sha256"], f"{where}.sha256"), entry["why"])
        )
    return PthPolicy(tuple(pth), tuple(hooks))


def load_signers(policies_dir: Path) -> dict[str, Signer]:
    path = policies_dir / TRUSTED_SIGNERS
    doc = _mapping(_load(path), str(path), {"version", "signers"}, {"version", "signers"})
    if doc["version"] not in (1, "1"):
        raise VerifyError(f"{path}: version: expected 1")
    keys = {"name", "identity", "issuer", "trusted_root", "repository", "ref"}
    signers: dict[str, Signer] = {}
    for i, item in enumerate(_list(doc["signers"], f"{path}: signers")):
        where = f"{path}: signers[{i}]"
        e = _mapping(item, where, keys, {"name", "identity", "issuer", "trusted_root"})
        root = Path(e["trusted_root"])
        if not root.is_absolute():
            root = policies_dir / root
        signers[e["name"]] = Signer(
            e["name"], e["identity"], e["issuer"], root, e.get("repository"), e.get("ref")
        )
    return signers
