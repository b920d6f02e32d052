"""What a detector is, and the scan that runs many over one text (pure, no I/O).

A detector has a name (what a block or a record says), a placeholder (what a masked match becomes)
and a confidence (how sure a match is, 0 to 1), and finds spans in a text. Most are one compiled
pattern, with a cheap test that skips the pattern when the text cannot hold a match (``hint``),
and a check on each candidate the pattern alone cannot make (a checksum, a decoding). Every
pattern here has bounded repetitions, and those that run on every text start with a literal or a
narrow class, so a scan costs time linear in the text.

``scan`` runs detectors in order and keeps the matches that do not overlap one already kept, so a
more specific detector (an OpenAI key) claims its span before a general one (high entropy).

A detector may name a ``gate``: an RE2 pattern that every text it can match in must contain (a
key's prefix, thirteen digits for a card). ``Prepass`` compiles the gates of a policy's detectors
into one RE2 set, matched once per text in one linear pass, and ``scan`` runs only the detectors
whose gate matched (and those without one). Most prompts hold no candidate for most detectors,
so they pay that one pass and not a Python pattern per detector.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import re2


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

    @property
    def gate(self) -> str | None: ...

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
    gate: str | None = None
    shortest: int = 0  # a region shorter than this cannot hold a match: skipped

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        if self.hint is not None and not self.hint(text):
            return
        check, group, pattern, shortest = self.check, self.group, self.pattern, self.shortest
        spans = [(0, len(text))] if self.regions is None else self.regions(text)
        for start, end in spans:
            if end - start < shortest:
                continue
            for found in pattern.finditer(text, start, end):
                if check is None or check(found.group(group)):
                    yield found.span(group)


# Regions: the parts of a text a family of detectors can match in, found once per text by one
# scan (the last text's are kept, since ``scan`` runs every detector over the same text), so
# that four digit detectors cost one pass over the text rather than four.
_DIGIT_RUN = re.compile(r"\d[\d ().+/-]{5,}")
_ASCII_DIGIT_RUN = re.compile(r"[0-9][0-9 ().+/-]{5,}")  # the same over ASCII, twice as fast
_last_runs: tuple[str, list[tuple[int, int]]] = ("", [])
_last_words: tuple[str, list[tuple[int, int]]] = ("", [])


def digit_runs(text: str) -> list[tuple[int, int]]:
    """Runs of digits and separators of 6 characters or more, widened by one character each
    side (a phone number's ``+`` or ``(``, the boundary a pattern looks at)."""
    global _last_runs
    if _last_runs[0] is text:
        return _last_runs[1]
    pattern = _ASCII_DIGIT_RUN if text.isascii() else _DIGIT_RUN
    runs = [(a - 1 if a else 0, b + 1) for a, b in map(re.Match.span, pattern.finditer(text))]
    _last_runs = (text, runs)
    return runs


# A token's characters (base64 and its URL-safe form): a run of 32 or more is where a token can be.
_TOKEN_RUN = re.compile(r"[A-Za-z0-9+/=_-]{32,}")
_TOKEN_RUN_RE2 = re2.compile(rb"[A-Za-z0-9+/=_-]{32,}")


def long_words(text: str) -> list[tuple[int, int]]:
    """The runs of 32 or more token characters, each whole (so a token, which no token
    character touches on either side, is one of them or inside one). RE2 finds them over an
    ASCII text (its offsets are then the text's), ``re`` over any other."""
    global _last_words
    if _last_words[0] is text:
        return _last_words[1]
    if text.isascii():
        spans = [m.span() for m in _TOKEN_RUN_RE2.finditer(text.encode("ascii"))]
    else:
        spans = [m.span() for m in _TOKEN_RUN.finditer(text)]
    _last_words = (text, spans)
    return spans


def contains(*needles: str) -> Callable[[str], bool]:
    """A hint: the text holds one of ``needles`` (exactly as written)."""
    if len(needles) == 1:
        (needle,) = needles
        return lambda text: needle in text
    return lambda text: any(needle in text for needle in needles)


class Prepass:
    """The gates of ``detectors`` as one RE2 set: ``running(text)`` is the detectors that may
    match in ``text`` (in their order), found in one pass over it."""

    def __init__(self, detectors: Sequence[Detector]) -> None:
        self.detectors = tuple(detectors)
        self._set = re2.Set.SearchSet()
        self._gated: list[int] = []  # the set's pattern number -> the detector's index
        self._always: list[int] = []
        for index, detector in enumerate(self.detectors):
            if detector.gate is None:
                self._always.append(index)
            else:
                self._set.Add(detector.gate)
                self._gated.append(index)
        self._set.Compile()

    def running(self, text: str) -> list[Detector]:
        if not self._gated:
            return list(self.detectors)
        hits = self._set.Match(text) if text else []
        if not hits:
            return [self.detectors[i] for i in self._always]
        gated = self._gated
        chosen = sorted(self._always + [gated[n] for n in hits])
        return [self.detectors[i] for i in chosen]


def scan(detectors: Sequence[Detector], text: str, prepass: Prepass | None = None) -> list[Match]:
    """Every match of ``detectors`` in ``text`` that no earlier detector's match overlaps, in the
    order of the text. With ``prepass`` (built from the same detectors), only the detectors
    whose gate the text passes run."""
    kept: list[Match] = []
    starts: list[int] = []  # of ``kept``, which stays sorted and free of overlaps
    for detector in detectors if prepass is None else prepass.running(text):
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
