"""A policy as it runs: the detectors it names, in the order they claim text, each with its action;
the operator's patterns and keyword lists compiled once by RE2; its size limit.

``compile_policy`` turns a config policy (``gateway.config.guardrails.Policy``, already checked)
into a ``Policy``. ``Policy.inspect`` is the pure scan of one text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import re2

from gateway.config import guardrails as config
from gateway.guardrails import injection, personal, secrets
from gateway.guardrails.detectors import Detector, Match, Prepass, masked, scan

# The order detectors claim text in: the operator's own lists, then formats that are certain
# (a prefix and a checksum), then the looser ones, high entropy last of all.
BUILTIN: tuple[Detector, ...] = (
    secrets.SEALGATE_KEY,
    secrets.ANTHROPIC_KEY,
    secrets.OPENAI_KEY,
    secrets.GITHUB_TOKEN,
    secrets.SLACK_TOKEN,
    secrets.STRIPE_KEY,
    secrets.GOOGLE_KEY,
    secrets.AWS_ACCESS_KEY,
    secrets.AWS_SECRET_KEY,
    secrets.PRIVATE_KEY,
    secrets.JWT,
    personal.IBAN,
    personal.CARD,
    personal.SSN,
    personal.EMAIL,
    personal.IP,
    personal.PhoneDetector(),
    injection.INJECTION_PHRASE,
    injection.HIDDEN_TEXT,
    injection.BIDI_CONTROL,
    injection.HOMOGLYPH,
    secrets.HIGH_ENTROPY,
)
SECRET_DETECTORS = tuple(d for d in BUILTIN if d.name in config.SECRETS)
SIZE = "size"  # the detector name a request over the policy's max_chars is blocked by

# What a policy is when the operator says nothing more: personal data masked, secrets refused,
# injection recorded. bench/guardrails.py measures it.
DEFAULT_DETECTORS: dict[str, config.Action] = {
    "personal": "mask",
    "secrets": "block",
    "injection": "log",
}


@dataclass(frozen=True, slots=True)
class OperatorDetector:
    """An operator's pattern or keyword list, matched by RE2 (linear in the text)."""

    name: str
    placeholder: str
    pattern: re2._Regexp
    confidence: float = 1.0
    gate: str | None = None  # RE2 already: one linear pass of its own

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        for found in self.pattern.finditer(text):
            yield found.span()


def keyword_pattern(words: list[str], case_sensitive: bool) -> re2._Regexp:
    alternatives = "|".join(re2.escape(word) for word in sorted(set(words), key=len, reverse=True))
    flags = "" if case_sensitive else "(?i)"
    return config.compile_pattern(rf"{flags}\b(?:{alternatives})\b")


@dataclass(frozen=True)
class Policy:
    name: str
    detectors: tuple[Detector, ...]
    actions: dict[str, config.Action]
    max_chars: int
    stages: frozenset[str]
    placeholders: dict[str, str] = field(default_factory=dict)
    webhook: config.Webhook | None = None
    prepass: Prepass | None = None

    def inspect(self, text: str) -> list[Match]:
        return scan(self.detectors, text, self.prepass)

    def mask(self, text: str, matches: list[Match]) -> str:
        hidden = [m for m in matches if self.actions[m.detector] == "mask"]
        return masked(text, hidden, self.placeholders)

    def blocking(self, matches: list[Match]) -> str | None:
        """The first detector among ``matches`` whose action is block."""
        for match in matches:
            if self.actions[match.detector] == "block":
                return match.detector
        return None


def compile_policy(name: str, source: config.Policy) -> Policy:
    actions: dict[str, config.Action] = {}
    for key, action in (source.detectors or {}).items():
        for member in config.GROUPS.get(key, (key,)):
            actions[member] = action
    detectors: list[Detector] = []
    for pattern in source.patterns:
        detectors.append(
            OperatorDetector(
                f"pattern:{pattern.name}",
                f"[{pattern.name.upper()}]",
                config.compile_pattern(pattern.regex),
            )
        )
        actions[f"pattern:{pattern.name}"] = pattern.action
    for keywords in source.keywords:
        detectors.append(
            OperatorDetector(
                f"keywords:{keywords.name}",
                f"[{keywords.name.upper()}]",
                keyword_pattern(keywords.words, keywords.case_sensitive),
            )
        )
        actions[f"keywords:{keywords.name}"] = keywords.action
    for detector in BUILTIN:
        if detector.name not in actions:
            continue
        if detector.name == "phone":
            detector = personal.PhoneDetector(tuple(source.phone_regions))
        detectors.append(detector)
    return Policy(
        name,
        tuple(detectors),
        actions,
        source.max_chars,
        frozenset(source.stages),
        {d.name: d.placeholder for d in detectors},
        source.webhook,
        Prepass(detectors),
    )


def default_policy() -> Policy:
    return compile_policy("default", config.Policy(detectors=dict(DEFAULT_DETECTORS)))
