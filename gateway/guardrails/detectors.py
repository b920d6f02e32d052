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

import bisect
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
    regions: Callable[[str], list[tuple[int, int]]] | None = None

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        if self.hint is not None and not self.hint(text):
            return
        check, group, pattern = self.check, self.group, self.pattern
        spans = [(0, len(text))] if self.regions is None else self.regions(text)
        for start, end in spans:
            for found in pattern.finditer(text, start, end):
                if check is None or check(found.group(group)):
                    yield found.span(group)


# Regions: the parts of a text a family of detectors can match in, found once per text by one
# scan (the last text's are kept, since ``scan`` runs every detector over the same text), so
# that four digit detectors cost one pass over the text rather than four.
_DIGIT_RUN = re.compile(r"\d[\d ().+/-]{5,}")
_last_runs: tuple[str, list[tuple[int, int]]] = ("", [])
_last_words: tuple[str, list[tuple[int, int]]] = ("", [])


def digit_runs(text: str) -> list[tuple[int, int]]:
    """Runs of digits and separators of 6 characters or more, widened by one character each
    side (a phone number's ``+`` or ``(``, the boundary a pattern looks at)."""
    global _last_runs
    if _last_runs[0] is text:
        return _last_runs[1]
    size = len(text)
    runs = [(max(0, m.start() - 1), min(size, m.end() + 1)) for m in _DIGIT_RUN.finditer(text)]
    _last_runs = (text, runs)
    return runs


def long_words(text: str) -> list[tuple[int, int]]:
    """The whitespace-separated words of 32 characters or more, where a token can be."""
    global _last_words
    if _last_words[0] is text:
        return _last_words[1]
    spans: list[tuple[int, int]] = []
    at = 0
    for word in [w for w in text.split() if len(w) >= 32]:
        at = text.find(word, at)
        spans.append((at, at + len(word)))
        at += len(word)
    _last_words = (text, spans)
    return spans


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
    starts: list[int] = []  # of ``kept``, which stays sorted and free of overlaps
    for detector in detectors:
        for start, end in detector.find(text):
            if end <= start:
                continue
            at = bisect.bisect_right(starts, start)
            if at and kept[at - 1].end > start:
                continue  # overlaps the match that starts before it
            if at < len(kept) and kept[at].start < end:
                continue  # overlaps the match that starts after it
            kept.insert(at, Match(detector.name, start, end))
            starts.insert(at, start)
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
