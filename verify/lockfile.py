"""Read hash-locked requirement files (uv / pip-compile output) into pins.

Only what the project's locks contain is accepted: ``name==version [; marker]`` followed by
``--hash=sha256:...`` options, comments and blank lines. Anything else (an index URL, ``-e``, a
path, a URL, a pin without hashes) is a ``VerifyError``: a lock the verifier cannot read fully is
not a lock it can vouch for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from verify.findings import VerifyError
from verify.markers import MarkerError, evaluate

_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;]+)"
    r"\s*(?:;(?P<marker>.*))?$"
)
_HASH = re.compile(r"--hash=sha256:(?P<hex>[0-9a-f]{64})")


def normalize(name: str) -> str:
    """PEP 503 name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    name: str
    """Normalized name."""
    version: str
    marker: str | None
    hashes: frozenset[str]
    source: str


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0] if not raw.lstrip().startswith("#") else ""
        if not buffer:
            start = number
        if line.rstrip().endswith("\\"):
            buffer += line.rstrip()[:-1] + " "
            continue
        buffer += line
        if buffer.strip():
            yield start, buffer.strip()
        buffer = ""
    if buffer.strip():
        yield start, buffer.strip()


def parse(text: str, source: str) -> list[Pin]:
    pins: list[Pin] = []
    for number, line in _logical_lines(text):
        head, _, options = line.partition(" --hash")
        options = "--hash" + options if options else ""
        match = _PIN.match(head.strip())
        if match is None:
            raise VerifyError(f"{source}:{number}: not a hash-locked pin: {line[:80]!r}")
        hashes = frozenset(m.group("hex") for m in _HASH.finditer(options))
        leftover = _HASH.sub("", options).strip()
        if leftover or not hashes:
            raise VerifyError(f"{source}:{number}: pin {match.group('name')} needs --hash only")
        marker = match.group("marker")
        pins.append(
            Pin(
                normalize(match.group("name")),
                match.group("version"),
                marker.strip() if marker else None,
                hashes,
                source,
            )
        )
    return pins


def load(paths: Iterable[Path]) -> list[Pin]:
    pins: list[Pin] = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise VerifyError(f"cannot read lock file {path}: {exc.strerror}") from exc
        pins += parse(text, str(path))
    return pins


def applicable(pins: Iterable[Pin], env: Mapping[str, str]) -> dict[str, Pin]:
    """The pins whose marker holds for ``env``; the same name pinned twice must agree."""
    chosen: dict[str, Pin] = {}
    for pin in pins:
        try:
            if pin.marker is not None and not evaluate(pin.marker, env):
                continue
        except MarkerError as exc:
            raise VerifyError(f"{pin.source}: {pin.name}: {exc}") from exc
        other = chosen.get(pin.name)
        if other is not None and other.version != pin.version:
            raise VerifyError(
                f"{pin.name} pinned to {other.version} in {other.source} "
                f"and {pin.version} in {pin.source}"
            )
        if other is not None:
            pin = Pin(pin.name, pin.version, pin.marker, other.hashes | pin.hashes, pin.source)
        chosen[pin.name] = pin
    return chosen
