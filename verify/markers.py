"""A small evaluator for PEP 508 environment markers, as uv writes them into lock files.

The verifier's runtime set has no ``packaging`` (and the hardened image has no pip to borrow it
from), so this evaluates the marker grammar itself against the *target's* marker environment
(which the probe reports). Supported: the PEP 508 variables, quoted strings, the comparison
operators (``== != < <= > >= ~= ===``), ``in`` / ``not in``, ``and`` / ``or`` and parentheses.
Version variables compare as release tuples; anything unparsable raises ``MarkerError``, so a
marker the verifier cannot read stops the run instead of silently including or dropping a pin.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

VERSION_VARS = frozenset({"python_version", "python_full_version", "implementation_version"})
VARIABLES = VERSION_VARS | {
    "os_name",
    "sys_platform",
    "platform_release",
    "platform_system",
    "platform_version",
    "platform_machine",
    "platform_python_implementation",
    "implementation_name",
    "extra",
}
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'[^']*'|\"[^\"]*\")|(?P<op>===|==|!=|<=|>=|~=|<|>|\(|\))"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)


class MarkerError(ValueError):
    """A marker this evaluator cannot parse or evaluate."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise MarkerError(f"cannot parse marker {text!r} at {pos}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def _release(version: str) -> tuple[int, ...] | None:
    match = re.match(r"^\s*v?(\d+(?:\.\d+)*)", version)
    if match is None:
        return None
    return tuple(int(p) for p in match.group(1).split("."))


def _pad(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    n = max(len(a), len(b))
    return a + (0,) * (n - len(a)), b + (0,) * (n - len(b))


def _compare(left: str, op: str, right: str, versions: bool) -> bool:
    if op == "in":
        return left in right
    if op == "not in":
        return left not in right
    if op == "===":
        return left == right
    lv, rv = (_release(left), _release(right)) if versions else (None, None)
    if lv is None or rv is None:
        if op == "==":
            return left == right
        if op == "!=":
            return left != right
        raise MarkerError(f"cannot compare {left!r} {op} {right!r}")
    if op == "~=":
        if len(rv) < 2:
            raise MarkerError(f"~= needs two release parts: {right!r}")
        a, b = _pad(lv, rv)
        return a >= b and lv[: len(rv) - 1] == rv[:-1]
    if op in ("==", "!="):
        if right.endswith(".*"):
            prefix = _release(right[:-2]) or ()
            equal = lv[: len(prefix)] == prefix
        else:
            a, b = _pad(lv, rv)
            equal = a == b
        return equal if op == "==" else not equal
    a, b = _pad(lv, rv)
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


class _Parser:
    def __init__(self, text: str, env: Mapping[str, str]) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.env = env
        self.text = text

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise MarkerError(f"marker ends early: {self.text!r}")
        self.pos += 1
        return token

    def parse(self) -> bool:
        value = self._or()
        if self._peek() is not None:
            raise MarkerError(f"trailing text in marker {self.text!r}")
        return value

    def _or(self) -> bool:
        value = self._and()
        while self._peek() == ("word", "or"):
            self.pos += 1
            right = self._and()
            value = value or right
        return value

    def _and(self) -> bool:
        value = self._atom()
        while self._peek() == ("word", "and"):
            self.pos += 1
            right = self._atom()
            value = value and right
        return value

    def _atom(self) -> bool:
        if self._peek() == ("op", "("):
            self.pos += 1
            value = self._or()
            if self._take() != ("op", ")"):
                raise MarkerError(f"unbalanced parentheses in {self.text!r}")
            return value
        left, left_var = self._value()
        kind, op = self._take()
        if (kind, op) == ("word", "not"):
            if self._take() != ("word", "in"):
                raise MarkerError(f"expected 'not in' in {self.text!r}")
            op = "not in"
        elif kind == "word" and op == "in":
            op = "in"
        elif kind != "op" or op in "()":
            raise MarkerError(f"expected an operator in {self.text!r}")
        right, right_var = self._value()
        versions = (left_var in VERSION_VARS) or (right_var in VERSION_VARS)
        return _compare(left, op, right, versions)

    def _value(self) -> tuple[str, str | None]:
        kind, text = self._take()
        if kind == "str":
            return text[1:-1], None
        if kind == "word" and text in VARIABLES:
            return self.env.get(text, ""), text
        raise MarkerError(f"unknown marker variable {text!r} in {self.text!r}")


def evaluate(marker: str, env: Mapping[str, str]) -> bool:
    """True when ``marker`` holds in ``env`` (a PEP 508 marker environment)."""
    return _Parser(marker, env).parse()
