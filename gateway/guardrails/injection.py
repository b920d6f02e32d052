"""Prompt injection: phrasings that try to override the instructions a model was given, and text a
reader does not see (zero-width and tag characters, bidirectional controls) or misreads (a word
that mixes Latin letters with Cyrillic or Greek ones drawn the same).

The three Unicode detectors skip a text that is all ASCII, which most prompts are, at the cost of
one ``str.isascii``.
"""

from __future__ import annotations

import re

from gateway.guardrails.detectors import PatternDetector

_PHRASE_WORDS = (
    "ignore",
    "disregard",
    "forget",
    "override",
    "bypass",
    "you are now",
    "system prompt",
    "developer mode",
    "do anything now",
    "new instructions",
    "new system instructions",
    "hidden instructions",
    "initial instructions",
)


def _phrase_hint(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in _PHRASE_WORDS)


INJECTION_PHRASE = PatternDetector(
    "injection_phrase",
    "[INJECTION]",
    0.8,
    re.compile(
        r"(?i)\b(?:ignore|disregard|forget|override|bypass)\b[^.\n]{0,40}?"
        r"\b(?:previous|prior|above|earlier|preceding|all|any|your|the|system|safety)\b[^.\n]{0,24}?"
        r"\b(?:instructions?|prompts?|rules|directions|guidelines|guardrails|context|messages?)\b"
        r"|\byou are now\b[^.\n]{0,30}?"
        r"\b(?:DAN|jailbroken|unrestricted|unfiltered|in developer mode)\b"
        r"|\b(?:reveal|print|show|repeat|output|leak)\b[^.\n]{0,24}?"
        r"\b(?:system prompt|hidden instructions|initial instructions)\b"
        r"|\b(?:enable|enter|activate)\b[^.\n]{0,12}?\bdeveloper mode\b"
        r"|\bdo anything now\b"
        r"|\bnew (?:system )?instructions\s{0,3}:"
    ),
    hint=_phrase_hint,
    gate=r"(?i)ignore|disregard|forget|override|bypass|you are now|system prompt|developer mode"
    r"|do anything now|new instructions|new system instructions|hidden instructions"
    r"|initial instructions",
)


def _not_ascii(text: str) -> bool:
    return not text.isascii()


HIDDEN_TEXT = PatternDetector(
    "hidden_text",
    "[HIDDEN]",
    0.9,
    re.compile("[\u200b-\u200d\u2060-\u2064\ufeff\U000e0000-\U000e007f]+"),
    hint=_not_ascii,
    gate=r"[\x{200b}-\x{200d}\x{2060}-\x{2064}\x{feff}\x{e0000}-\x{e007f}]",
)
BIDI_CONTROL = PatternDetector(
    "bidi_control",
    "[BIDI]",
    0.9,
    re.compile("[\u202a-\u202e\u2066-\u2069]+"),
    hint=_not_ascii,
    gate=r"[\x{202a}-\x{202e}\x{2066}-\x{2069}]",
)
# Cyrillic and Greek letters that are drawn like Latin ones (Unicode's confusables for Latin).
_CONFUSABLE = (
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u0501\u04bb\u04cf\u051b\u051d"
    "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0406\u0408\u0405"
    "\u03bf\u03b1\u03c1\u03b9\u03c5\u03bd\u0391\u0392\u0395\u0397\u0399\u039a\u039c\u039d\u039f"
    "\u03a1\u03a4\u03a7\u03a5\u0396"
)
HOMOGLYPH = PatternDetector(
    "homoglyph",
    "[HOMOGLYPH]",
    0.8,
    re.compile(
        rf"(?<!\w)\w{{0,40}}?(?:[A-Za-z][{_CONFUSABLE}]|[{_CONFUSABLE}][A-Za-z])\w{{0,40}}(?!\w)"
    ),
    hint=_not_ascii,
    gate=rf"[A-Za-z][{_CONFUSABLE}]|[{_CONFUSABLE}][A-Za-z]",
)
