"""Secrets: provider API keys by their published formats, PEM private keys, JWTs, the gateway's
own credential tokens, and high-entropy tokens that fit no known format.

A format detector starts with its literal prefix, so a text without that prefix costs one
substring search. High entropy is the catch-all and runs last: a run of 32 to 100 token
characters that mixes cases and digits, is not hexadecimal (git hashes, UUIDs, digests) and
carries at least ``ENTROPY_BITS`` bits of Shannon entropy per character. A run longer than 100
(a base64 image, a minified bundle) is not a token.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter

from gateway import tokens
from gateway.guardrails.detectors import PatternDetector, contains, long_words

ENTROPY_BITS = 4.2
_HEX = frozenset("0123456789abcdefABCDEF-")


def _mixed(tail: str) -> bool:
    """Random key material: upper and lower case letters and digits all present."""
    return (
        any(c.isdigit() for c in tail)
        and any(c.isupper() for c in tail)
        and any(c.islower() for c in tail)
    )


def entropy(text: str) -> float:
    length = len(text)
    return -sum(n / length * math.log2(n / length) for n in Counter(text).values())


def high_entropy(candidate: str) -> bool:
    if set(candidate) <= _HEX or not _mixed(candidate):
        return False
    return entropy(candidate) >= ENTROPY_BITS


def _jwt(candidate: str) -> bool:
    header = candidate.split(".", 1)[0]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(decoded, dict)


# What a candidate needs before its entropy is worth working out: 32 token characters in a row,
# one of them outside hexadecimal (or padding after them), for a run of hexadecimal digits and
# dashes (a UUID, a digest) is never a finding. A window of 32 with the non-hex character at each
# of its places: RE2 matches the alternation in the same one pass.
_ENTROPY_GATE = (
    "|".join(f"[A-Za-z0-9+/_-]{{{k}}}[G-Zg-z+/_][A-Za-z0-9+/_-]{{{31 - k}}}" for k in range(32))
    + "|[A-Za-z0-9+/_-]{32}="
)

OPENAI_KEY = PatternDetector(
    "openai_key",
    "[OPENAI_KEY]",
    0.95,
    re.compile(r"(?<![\w-])sk-(?!ant-|sg-)(?:(?:proj|svcacct|admin)-)?([A-Za-z0-9_-]{20,200})"),
    hint=contains("sk-"),
    gate=r"sk-",
    check=_mixed,
    group=0,
)
ANTHROPIC_KEY = PatternDetector(
    "anthropic_key",
    "[ANTHROPIC_KEY]",
    0.99,
    re.compile(r"(?<![\w-])sk-ant-(?:[a-z]{2,6}\d{2}-)?[A-Za-z0-9_-]{20,200}"),
    hint=contains("sk-ant-"),
    gate=r"sk-ant-",
)
GOOGLE_KEY = PatternDetector(
    "google_key",
    "[GOOGLE_KEY]",
    0.95,
    re.compile(r"(?<![\w-])AIza[0-9A-Za-z_-]{35}(?![\w-])"),
    hint=contains("AIza"),
    gate=r"AIza",
)
AWS_ACCESS_KEY = PatternDetector(
    "aws_access_key",
    "[AWS_ACCESS_KEY]",
    0.95,
    re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    hint=contains("AKIA", "ASIA", "ABIA", "ACCA"),
    gate=r"A(?:KI|SI|BI|CC)A",
)
# A secret access key is 40 characters of base64 with nothing of its own to recognise it by, so
# it is found by what names it: the credential files' and environment's key names.
AWS_SECRET_KEY = PatternDetector(
    "aws_secret_key",
    "[AWS_SECRET_KEY]",
    0.9,
    re.compile(
        r"(?i:aws_?secret(?:_?access)?_?key|secret_?access_?key|SecretAccessKey)"
        r"[\"']?\s{0,4}[:=]>?\s{0,4}[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
    ),
    hint=lambda text: "ecret" in text or "ECRET" in text,
    gate=r"(?i)secret",
    group=1,
)
GITHUB_TOKEN = PatternDetector(
    "github_token",
    "[GITHUB_TOKEN]",
    0.99,
    re.compile(r"(?<![\w-])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,255})"),
    hint=contains("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    gate=r"gh[pousr]_|github_pat_",
)
SLACK_TOKEN = PatternDetector(
    "slack_token",
    "[SLACK_TOKEN]",
    0.95,
    re.compile(
        r"(?<![\w-])xox[abposer]-[A-Za-z0-9-]{10,250}"
        r"|https://hooks\.slack\.com/services/[A-Za-z0-9_/-]{20,200}"
    ),
    hint=contains("xox", "hooks.slack.com"),
    gate=r"xox|hooks\.slack\.com",
)
STRIPE_KEY = PatternDetector(
    "stripe_key",
    "[STRIPE_KEY]",
    0.99,
    re.compile(r"(?<![\w-])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,247}(?![\w-])"),
    hint=contains("_live_", "_test_"),
    gate=r"_(?:live|test)_",
)
# The block when its end is there; otherwise from the header to the end of what is there (a
# stream holds it back while it grows, ``gateway.guardrails.streaming``).
PRIVATE_KEY = PatternDetector(
    "private_key",
    "[PRIVATE_KEY]",
    0.99,
    re.compile(
        r"-----BEGIN ((?:[A-Z0-9]{1,16} ){0,3})PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[A-Za-z0-9+/=:,\s-]{0,16384}?-----END \1PRIVATE KEY(?: BLOCK)?-----"
        r"|[A-Za-z0-9+/=:,\s]{0,16384})"
    ),
    hint=contains("PRIVATE KEY"),
    gate=r"PRIVATE KEY",
)
JWT = PatternDetector(
    "jwt",
    "[JWT]",
    0.95,
    re.compile(
        r"(?<![\w-])eyJ[A-Za-z0-9_-]{5,2000}\.eyJ[A-Za-z0-9_-]{5,8000}\.[A-Za-z0-9_-]{0,2000}"
    ),
    hint=contains("eyJ"),
    gate=r"eyJ",
    check=_jwt,
)
_TOKEN_PREFIXES = tuple(kind.prefix for kind in (tokens.VIRTUAL_KEY, tokens.ADMIN_TOKEN))
SEALGATE_KEY = PatternDetector(
    "sealgate_key",
    "[SEALGATE_KEY]",
    0.99,
    re.compile(
        r"(?<![\w-])(?:"
        + "|".join(re.escape(p) for p in _TOKEN_PREFIXES)
        + rf")[0-9a-f]{{{tokens.ID_HEX}}}-[A-Za-z0-9_-]{{{tokens.SECRET_CHARS}}}(?![\w-])"
    ),
    hint=contains(*_TOKEN_PREFIXES),
    gate="|".join(re.escape(p) for p in _TOKEN_PREFIXES),
)
HIGH_ENTROPY = PatternDetector(
    "high_entropy",
    "[SECRET]",
    0.6,
    re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{32,100}={0,2}(?![A-Za-z0-9+/=_-])"),
    check=high_entropy,
    regions=long_words,
    gate=_ENTROPY_GATE,
)
