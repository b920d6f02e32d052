"""Request bodies as strict JSON: what every route reads, so no route meets a value the rest of
the gateway cannot hold.

RFC 8259 JSON in UTF-8, and within I-JSON's bounds (RFC 7493): no lone surrogate (an escape
such as ``\\ud800`` is valid JSON but not Unicode, and cannot be encoded, stored or compared),
no ``NaN`` or ``Infinity`` and no number that is not finite as a double, no integer beyond 64
bits, and nesting at most ``MAX_DEPTH`` deep (the parser's own recursion fails in the thousands,
and what reads the document after it recurses too). Each refusal is a 400 that says which rule.

The common body costs one C-speed parse: the tree is walked only when the text could hold what
the parser lets through (more brackets than ``MAX_DEPTH``, a surrogate escape, a long digit run).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from gateway.errors import InvalidRequest

MAX_DEPTH = 64
INT64 = 2**63
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_LONG_DIGITS = re.compile(r"\d{19}")  # 2**63 has 19 digits: anything shorter fits


def _not_a_number(name: str) -> Any:
    raise InvalidRequest(f"request body holds {name}, which is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidRequest(f"request body holds the number {text[:20]}, which is out of range")
    return value


def parse(body: bytes) -> Any:
    """The JSON document in ``body``, or InvalidRequest naming the rule it breaks."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("request body is not valid UTF-8") from None
    try:
        data = json.loads(text, parse_constant=_not_a_number, parse_float=_finite)
    except RecursionError:
        raise InvalidRequest(f"request body is nested more than {MAX_DEPTH} deep") from None
    except ValueError:
        raise InvalidRequest("request body is not valid JSON") from None
    surrogates = _SURROGATE_ESCAPE.search(text) is not None
    numbers = _LONG_DIGITS.search(text) is not None
    if surrogates or numbers or text.count("[") + text.count("{") > MAX_DEPTH:
        _check(data, surrogates, numbers)
    return data


def _check(data: Any, surrogates: bool, numbers: bool) -> None:
    """Walk the document once (no recursion): depth, and lone surrogates and 64-bit integers
    when the text could hold them."""
    todo: list[tuple[Any, int]] = [(data, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, dict):
            items: Any = value.values()
            if surrogates:
                for key in value:
                    _text(key)
        elif isinstance(value, list):
            items = value
        else:
            _scalar(value, surrogates, numbers)
            continue
        if depth > MAX_DEPTH:
            raise InvalidRequest(f"request body is nested more than {MAX_DEPTH} deep")
        for item in items:
            if isinstance(item, dict | list):
                todo.append((item, depth + 1))
            else:
                _scalar(item, surrogates, numbers)


def _scalar(value: Any, surrogates: bool, numbers: bool) -> None:
    if surrogates and isinstance(value, str):
        _text(value)
    elif numbers and isinstance(value, int) and not -INT64 <= value < INT64:
        raise InvalidRequest("request body holds an integer that does not fit in 64 bits")


def _text(value: str) -> None:
    if not value.isascii() and _SURROGATE.search(value):
        raise InvalidRequest("request body holds a lone surrogate, which is not Unicode")
