"""``sealgate policy check``: every policy file validated by the loader that reads it at run time.

Each ``*.yaml`` in the policy directory must be one the gateway or the verifier knows, and must
load with that same loader (``verify.policies`` for the pth allowlist and trusted signers,
``gateway.providers.egress`` for the egress allowlist): no second schema that could drift from
the code.
A problem names the file, the line and the key. An unknown file is a problem too: a policy that
nothing validates is one nobody checked.

This lives in ``gateway`` rather than ``verify`` because the egress loader is the gateway's, and
``verify`` never imports ``gateway``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateway.config import (
    GUARDRAILS_FILE,
    _line_of,  # the config's own key-to-line locator, shared on purpose
    load_guardrails,
)
from gateway.errors import ConfigError
from gateway.providers import egress
from verify import policies
from verify.findings import VerifyError


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}"


def _egress(directory: Path) -> None:
    egress.load_policy(directory / egress.POLICY_FILE)


def _guardrails(directory: Path) -> None:
    load_guardrails(directory / GUARDRAILS_FILE)


LOADERS: dict[str, Callable[[Path], Any]] = {
    policies.PTH_ALLOWLIST: policies.load_pth_policy,
    policies.TRUSTED_SIGNERS: policies.load_signers,
    egress.POLICY_FILE: _egress,
    GUARDRAILS_FILE: _guardrails,
}
OPTIONAL = frozenset({GUARDRAILS_FILE})  # guardrail policies may live in the config instead
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_UNKNOWN = re.compile(r"^unknown key '([^']+)'")
_MISSING = re.compile(r"^missing key '([^']+)'")


def _path(key: str) -> list[Any]:
    if key.startswith("("):
        return []
    return [int(m.group(2)) if m.group(2) else m.group(1) for m in _PART.finditer(key)]


def _split_verify_error(message: str, source: str) -> tuple[str, str]:
    """``'<file>: pth[0].sha256: expected ...'`` -> (``pth[0].sha256``, ``expected ...``)."""
    rest = message.removeprefix(source).removeprefix(":").strip()
    head, sep, tail = rest.partition(": ")
    if sep and " " not in head:
        key, problem = head, tail
    else:
        key, problem = "(top level)", rest
    unknown = _UNKNOWN.match(problem) or _MISSING.match(problem)
    if unknown and _UNKNOWN.match(problem):
        key = unknown.group(1) if key == "(top level)" else f"{key}.{unknown.group(1)}"
    return key, problem


def check_file(path: Path) -> Problem | None:
    source = str(path)
    loader = LOADERS.get(path.name)
    if loader is None:
        known = ", ".join(sorted(LOADERS))
        return Problem(source, None, "(file)", f"is not a known policy file (known: {known})")
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except OSError as exc:
        return Problem(source, None, "(file)", f"cannot be read: {exc.strerror}")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        return Problem(source, line, "(file)", f"is not valid YAML: {getattr(exc, 'problem', '')}")
    try:
        loader(path.parent)
    except VerifyError as exc:
        key, problem = _split_verify_error(str(exc), source)
    except ConfigError as exc:
        key, problem = re.sub(r" \(line \d+\)$", "", exc.key), exc.problem
    else:
        return None
    return Problem(source, _line_of(node, _path(key)), key, problem)


def check(directory: Path) -> list[Problem]:
    if not directory.is_dir():
        return [Problem(str(directory), None, "(directory)", "is not a directory")]
    found = sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))
    problems = [p for p in (check_file(path) for path in found) if p is not None]
    present = {path.name for path in found}
    for name in sorted(set(LOADERS) - present - OPTIONAL):
        problems.append(Problem(str(directory / name), None, "(file)", "is missing"))
    return problems
