"""A strict reader for the small YAML subset the verifier's policy files are written in.

Why not PyYAML: the environment checks must run with the standard library alone, because the
``yaml`` package they would import is one of the files being checked (an attacker's ``yaml``
could make the check pass). The policy files need very little of YAML, so this reads exactly
that and refuses everything else with the line that holds it:

- block mappings (``key: value``, ``key:`` + an indented block) with string keys, no duplicates;
- block sequences (``- item``, also "indentless" under a key, as PyYAML writes them), whose
  items may be mappings (``- name: x`` + more keys aligned with ``name``) or sequences;
- scalars on one line: plain, 'single-quoted' (``''`` escapes a quote) and "double-quoted"
  (``\\\\ \\" \\/ \\n \\t \\r \\xXX \\uXXXX``); the flow forms ``[]``, ``{}`` and ``[a, 'b']``;
- comments (``#`` at the start of a line or after whitespace) and blank lines.

Plain scalars resolve as PyYAML (YAML 1.1) resolves them where that is unambiguous: ``null``,
``~`` and nothing to None, ``true``/``false`` to bool, decimal integers to int, anything else to
str. A plain scalar PyYAML would read as something else (``yes``, ``on``, ``1.5``, ``0x1f``,
``2024-01-01``, ``<<``) is refused with "quote it", so this reader and PyYAML never disagree on a
document this reader accepts (tests/verify/test_yamlsubset.py holds them to that). Refused too:
anchors, aliases, tags, block scalars (``|``, ``>``), multi-line scalars, directives and
several documents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


class YamlError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass
class _Line:
    number: int
    indent: int
    text: str


_NULL = re.compile(r"^(?:~|null|Null|NULL)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
# What PyYAML's resolver (YAML 1.1) would turn into a non-string that this reader does not.
_AMBIGUOUS = re.compile(
    r"^(?:yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF"
    r"|[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+"
    r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+"
    r"|[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
    r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
    r"|[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?"
    r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?"
    r"|<<|=)$"
)
_PLAIN_START_REFUSED = set(",[]{}#&*!|>%@`'\"")
_ESCAPES = {"\\": "\\", '"': '"', "/": "/", "n": "\n", "t": "\t", "r": "\r", "0": "\0"}


def _strip_comment(text: str) -> str:
    """The line without its comment; quotes are respected."""
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if (quote == '"' and ch == "\\") or (quote == "'" and text[i : i + 2] == "''"):
                i += 2  # an escape, or a quote doubled inside single quotes
                continue
            if ch == quote:
                quote = ""
        elif ch in "'\"" and (i == 0 or text[i - 1] in " \t[,:-"):
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
        i += 1
    return text.rstrip()


def _lines(text: str) -> list[_Line]:
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        content = raw.lstrip(" ")
        if content.startswith("\t"):
            raise YamlError(number, "tab in indentation")
        content = _strip_comment(content)
        if not content:
            continue
        if number == 1 and content.startswith("\ufeff"):
            content = content[1:]
        if content.startswith(("---", "...", "%")):
            raise YamlError(number, "directives and document markers are not supported")
        lines.append(_Line(number, len(raw) - len(raw.lstrip(" ")), content))
    return lines


def _quoted(text: str, number: int) -> tuple[str, str]:
    """A quoted scalar at the start of ``text``: (value, what follows it)."""
    quote, out, i = text[0], [], 1
    while i < len(text):
        ch = text[i]
        if quote == "'" and ch == "'":
            if text[i + 1 : i + 2] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), text[i + 1 :]
        if quote == '"' and ch == '"':
            return "".join(out), text[i + 1 :]
        if quote == '"' and ch == "\\":
            code = text[i + 1 : i + 2]
            if code in _ESCAPES:
                out.append(_ESCAPES[code])
                i += 2
                continue
            width = {"x": 2, "u": 4}.get(code)
            digits = text[i + 2 : i + 2 + width] if width else ""
            if not width or not re.fullmatch(r"[0-9a-fA-F]+", digits) or len(digits) != width:
                raise YamlError(number, f"unsupported escape in a double-quoted scalar: \\{code}")
            out.append(chr(int(digits, 16)))
            i += 2 + width
            continue
        out.append(ch)
        i += 1
    raise YamlError(number, "quoted scalar does not end on its line (multi-line is not supported)")


def _plain(text: str, number: int) -> Any:
    if text[0] in _PLAIN_START_REFUSED:
        raise YamlError(number, f"unsupported YAML syntax at {text[:20]!r}")
    if text[0] in "-?:" and text[1:2] in ("", " "):
        raise YamlError(number, f"unsupported YAML syntax at {text[:20]!r}")
    if ": " in text or text.endswith(":"):
        raise YamlError(number, "a mapping is not allowed here (quote the value)")
    if _NULL.match(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.match(text):
        return int(text)
    if _AMBIGUOUS.match(text):
        raise YamlError(number, f"{text!r} is ambiguous in YAML 1.1: quote it")
    return text


def _scalar(text: str, number: int) -> Any:
    if text[0] in "'\"":
        value, rest = _quoted(text, number)
        if rest.strip():
            raise YamlError(number, f"unexpected text after a quoted scalar: {rest.strip()[:20]!r}")
        return value
    return _plain(text, number)


def _flow(text: str, number: int) -> list[Any] | dict[str, Any]:
    if text == "{}":
        return {}
    if not (text.startswith("[") and text.endswith("]")):
        raise YamlError(number, "only [], {} and flat [a, b] flow collections are supported")
    body = text[1:-1].strip()
    items: list[Any] = []
    while body:
        if body[0] in "'\"":
            value, body = _quoted(body, number)
            body = body.strip()
        else:
            item, comma, after = body.partition(",")
            item = item.strip()
            if not item or any(c in item for c in "[]{}"):
                raise YamlError(number, "nested or empty items in a flow sequence")
            value, body = _plain(item, number), comma + after
        items.append(value)
        if not body:
            break
        if not body.startswith(","):
            raise YamlError(number, f"expected ',' in a flow sequence at {body[:20]!r}")
        body = body[1:].strip()
        if not body:
            raise YamlError(number, "trailing comma in a flow sequence")
    return items


def _value(text: str, number: int) -> Any:
    if text.startswith(("[", "{")):
        return _flow(text, number)
    return _scalar(text, number)


def _split_key(line: _Line) -> tuple[str, str] | None:
    text = line.text
    if text[0] in "'\"":
        key, rest = _quoted(text, line.number)
        rest = rest.lstrip(" ")
        if rest == ":" or rest.startswith(": "):
            return key, rest[1:].strip()
        return None
    at = text.find(": ")
    if at < 0 and text.endswith(":"):
        at = len(text) - 1
    if at <= 0:
        return None
    key = _plain(text[:at].rstrip(), line.number)
    if not isinstance(key, str):
        raise YamlError(line.number, "mapping keys must be strings")
    return key, text[at + 1 :].strip()


def _is_item(line: _Line) -> bool:
    return line.text == "-" or line.text.startswith("- ")


class _Parser:
    def __init__(self, lines: list[_Line]) -> None:
        self.lines = lines

    def node(self, i: int, indent: int) -> tuple[Any, int]:
        line = self.lines[i]
        if _is_item(line):
            return self.sequence(i, indent)
        if _split_key(line) is not None:
            return self.mapping(i, indent)
        return self.leaf(i, _value(line.text, line.number))

    def leaf(self, i: int, value: Any) -> tuple[Any, int]:
        line = self.lines[i]
        if i + 1 < len(self.lines) and self.lines[i + 1].indent > line.indent:
            raise YamlError(self.lines[i + 1].number, "unexpected indentation")
        return value, i + 1

    def child(self, i: int, indent: int, indentless: bool) -> tuple[Any, int]:
        """The value of an entry whose text ended at line i-1 (``key:`` or ``-``)."""
        if i < len(self.lines):
            nxt = self.lines[i]
            if nxt.indent > indent:
                return self.node(i, nxt.indent)
            if indentless and nxt.indent == indent and _is_item(nxt):
                return self.sequence(i, indent)
        return None, i

    def mapping(self, i: int, indent: int) -> tuple[dict[str, Any], int]:
        result: dict[str, Any] = {}
        while i < len(self.lines) and self.lines[i].indent == indent:
            line = self.lines[i]
            if _is_item(line):
                raise YamlError(line.number, "a sequence item where a mapping key was expected")
            split = _split_key(line)
            if split is None:
                raise YamlError(line.number, "expected 'key: value'")
            key, rest = split
            if key in result:
                raise YamlError(line.number, f"duplicate key {key!r}")
            if rest:
                result[key], i = self.leaf(i, _value(rest, line.number))
            else:
                result[key], i = self.child(i + 1, indent, indentless=True)
        self.dedent(i, indent)
        return result, i

    def sequence(self, i: int, indent: int) -> tuple[list[Any], int]:
        result: list[Any] = []
        while i < len(self.lines) and self.lines[i].indent == indent and _is_item(self.lines[i]):
            line = self.lines[i]
            rest = line.text[1:]
            if not rest.strip():
                value, i = self.child(i + 1, indent, indentless=False)
            else:
                column = indent + 1 + (len(rest) - len(rest.lstrip(" ")))
                self.lines[i] = _Line(line.number, column, rest.lstrip(" "))
                value, i = self.node(i, column)
            result.append(value)
        self.dedent(i, indent)
        return result, i

    def dedent(self, i: int, indent: int) -> None:
        if i < len(self.lines) and self.lines[i].indent > indent:
            raise YamlError(self.lines[i].number, "unexpected indentation")


def load(text: str) -> Any:
    """The document in ``text`` (None when it holds nothing); ``YamlError`` if unsupported."""
    lines = _lines(text)
    if not lines:
        return None
    value, end = _Parser(lines).node(0, lines[0].indent)
    if end != len(lines):
        raise YamlError(lines[end].number, "unexpected text after the document")
    return value
