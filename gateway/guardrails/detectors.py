"""What a detector is, and the scan that runs many over one text (pure, no I/O).

A detector has a name (what a block or a record says), a placeholder (what a masked match becomes)
and a confidence (how sure a match is, 0 to 1), and finds spans in a text. Most are one compiled
pattern, with a cheap test that skips the pattern when the text cannot hold a match (``hint``),
and a check on each candidate the pattern alone cannot make (a checksum, a decoding). Every
pattern here has bounded repetitions, and those that run on every text start with a literal or a
narrow class, so a scan costs time linear in the text.

``scan`` runs detectors in order and keeps the matches that do not overlap one already kept, so a
more specific detector (an OpenAI key) claims its span before a general one (high entropy).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Match:
    detector: str
    start: int
    end: int


class Detector(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def placeholder(self) -> str: ...

    @property
    def confidence(self) -> float: ...

    def find(self, text: str) -> Iterator[tuple[int, int]]: ...


@dataclass(frozen=True, slots=True)
class PatternDetector:
    """One compiled pattern; ``group`` is the part of a match that is the finding, ``hint`` a test
    the whole text must pass first, ``check`` a test each candidate must pass."""

    name: str
    placeholder: str
    confidence: float
    pattern: re.Pattern[str]
    hint: Callable[[str], bool] | None = None
    check: Callable[[str], bool] | None = None
    group: int = 0

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        if self.hint is not None and not self.hint(text):
            return
        check, group = self.check, self.group
        for found in self.pattern.finditer(text):
            if check is None or check(found.group(group)):
                yield found.span(group)


def contains(*needles: str) -> Callable[[str], bool]:
    """A hint: the text holds one of ``needles`` (exactly as written)."""
    if len(needles) == 1:
        (needle,) = needles
        return lambda text: needle in text
    return lambda text: any(needle in text for needle in needles)


def scan(detectors: Sequence[Detector], text: str) -> list[Match]:
    """Every match of ``detectors`` in ``text`` that no earlier detector's match overlaps, in the
    order of the text."""
    kept: list[Match] = []
    for detector in detectors:
        for start, end in detector.find(text):
            if end <= start:
                continue
            if any(start < m.end and m.start < end for m in kept):
                continue
            kept.append(Match(detector.name, start, end))
    kept.sort(key=lambda m: m.start)
    return kept


def masked(text: str, matches: Sequence[Match], placeholders: dict[str, str]) -> str:
    """``text`` with each match (in text order, none overlapping) replaced by its placeholder."""
    if not matches:
        return text
    out: list[str] = []
    at = 0
    for match in matches:
        out.append(text[at : match.start])
        out.append(placeholders[match.detector])
        at = match.end
    out.append(text[at:])
    return "".join(out)
