"""The ``guardrails`` section of the config: named policies, and which one applies to a key, a team
or a model (docs/guardrails.md).

    guardrails:
      default: standard                 # the policy of a request nothing more specific names
      keys: {3f2a9c0d11e04b7a: strict}  # a virtual key's id -> policy
      teams: {payments: strict}         # a team's id -> policy
      models: {gpt-4o: standard}        # a public model name -> policy
      policies:
        standard:
          detectors:                    # a built-in detector, or a group of them -> action
            personal: mask              # block | mask | log
            secrets: block
            injection: log
          phone_regions: [US, GB]       # regions whose national phone numbers are recognised
          patterns:                     # operator regular expressions (RE2: linear time)
            - {name: ticket, regex: "TCK-[0-9]{6}", action: mask}
          keywords:
            - {name: codenames, words: [bluebird, nightjar], action: block}
          max_chars: 200000             # the most text one request may carry
          webhook:                      # an external guardrail, asked before the call
            url: https://guard.example.com/v1/check
            timeout_seconds: 2
            on_error: fail_closed       # fail_closed (default): 503 | fail_open: go on
          stages: [request, response]   # where the policy applies (both by default)

The most specific name wins: key, then team, then model, then ``default``. No policy means no
guardrail at all, and the request pays nothing for it. Every detector and pattern is checked
here, so a policy that names an unknown detector or a pattern RE2 cannot run in linear time is
refused at start-up with its file, key and line.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

import re2
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Action = Literal["block", "mask", "log"]
Stage = Literal["request", "response"]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]

MAX_PATTERN_CHARS = 1024
MAX_KEYWORDS = 10_000
# RE2 builds a program for each pattern within this much memory, and refuses a larger one: a
# pattern's cost is bounded when it is compiled, and matching is linear in the text.
PATTERN_MAX_MEM = 8 << 20
DEFAULT_MAX_CHARS = 1_000_000
DEFAULT_WEBHOOK_TIMEOUT = 2.0


def pattern_options() -> re2.Options:
    options = re2.Options()
    options.max_mem = PATTERN_MAX_MEM
    options.log_errors = False
    return options


def compile_pattern(pattern: str) -> re2._Regexp:
    """``pattern`` compiled by RE2, or ValueError saying why it cannot be (never a backtracking
    engine: a pattern RE2 refuses, such as one with a backreference or a lookaround, is refused)."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"is longer than {MAX_PATTERN_CHARS} characters")
    try:
        compiled = re2.compile(pattern, pattern_options())
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(
            f"is not a pattern RE2 can match in linear time ({reason}); backreferences and "
            "lookarounds are not supported"
        ) from None
    if compiled.search("") is not None:
        raise ValueError("matches the empty string, so it would match everywhere")
    return compiled


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Pattern(Strict):
    name: Name
    regex: str = Field(min_length=1)
    action: Action = "block"

    @field_validator("regex")
    @classmethod
    def _linear_time(cls, value: str) -> str:
        compile_pattern(value)
        return value


class Keywords(Strict):
    name: Name
    words: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        min_length=1, max_length=MAX_KEYWORDS
    )
    action: Action = "block"
    case_sensitive: bool = False


class Webhook(Strict):
    """An external guardrail: the request's texts (credentials masked) are posted to ``url``,
    whose host must be on the egress allowlist under ``guardrail_webhook``; it answers
    ``{"verdict": "allow"}`` or ``{"verdict": "block"}``."""

    url: str
    timeout_seconds: float = Field(DEFAULT_WEBHOOK_TIMEOUT, gt=0, le=30)
    on_error: Literal["fail_closed", "fail_open"] = "fail_closed"
    allow_private_network: bool = False
    # where it is asked: the request, and a complete (not streamed) answer before the client
    # sees it; within the policy's own stages
    stages: list[Literal["request", "response"]] = ["request", "response"]

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an absolute http(s) URL")
        if parts.username or parts.password:
            raise ValueError("credentials in the URL are refused")
        return value


class Policy(Strict):
    detectors: dict[str, Action] = {}
    webhook: Webhook | None = None
    phone_regions: list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]] = ["US"]
    patterns: list[Pattern] = []
    keywords: list[Keywords] = []
    max_chars: int = Field(DEFAULT_MAX_CHARS, ge=1, le=1 << 30)
    stages: list[Stage] = ["request", "response"]

    @field_validator("detectors")
    @classmethod
    def _known_detectors(cls, value: dict[str, Action]) -> dict[str, Action]:
        # The names are the guardrails package's; config sits below it, so it keeps the list.
        unknown = sorted(set(value) - KNOWN_DETECTORS)
        if unknown:
            known = ", ".join(sorted(KNOWN_DETECTORS))
            raise ValueError(f"unknown detector {unknown[0]!r}; known: {known}")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Policy:
        names = [p.name for p in self.patterns] + [k.name for k in self.keywords]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"the pattern or keyword list name {name!r} is used twice")
        return self


PERSONAL = ("email", "phone", "card", "iban", "ssn", "ip")
SECRETS = (
    "openai_key",
    "anthropic_key",
    "google_key",
    "aws_access_key",
    "aws_secret_key",
    "github_token",
    "slack_token",
    "stripe_key",
    "private_key",
    "jwt",
    "sealgate_key",
    "high_entropy",
)
INJECTION = ("injection_phrase", "hidden_text", "bidi_control", "homoglyph")
GROUPS: dict[str, tuple[str, ...]] = {
    "personal": PERSONAL,
    "secrets": SECRETS,
    "injection": INJECTION,
}
KNOWN_DETECTORS = frozenset(PERSONAL + SECRETS + INJECTION) | frozenset(GROUPS)


class Guardrails(Strict):
    policies: dict[Name, Policy] = {}
    default: str | None = None
    keys: dict[str, str] = {}
    teams: dict[str, str] = {}
    models: dict[str, str] = {}

    @model_validator(mode="after")
    def _policies_exist(self) -> Guardrails:
        known = ", ".join(sorted(self.policies)) or "(none)"
        if self.default is not None and self.default not in self.policies:
            raise ValueError(f"default names no policy {self.default!r}; known: {known}")
        for section, names in (("keys", self.keys), ("teams", self.teams), ("models", self.models)):
            for subject, policy in names.items():
                if policy not in self.policies:
                    raise ValueError(
                        f"{section}.{subject} names no policy {policy!r}; known: {known}"
                    )
        return self
