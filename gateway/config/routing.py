"""The ``router`` section of the config: retries and their backoff, the circuit breaker, and per
model group the strategy and the fallbacks by error class.

    router:
      retries: 1                       # extra attempts in a group for a retryable failure
      cooldown_seconds: 30             # how long an opened breaker keeps a deployment out
      backoff:
        base_seconds: 0.05             # full jitter: a retry waits uniform(0, base * 2**n) ...
        max_seconds: 2                 # ... at most this
        retry_after_max_seconds: 10    # an upstream's Retry-After is honoured up to this
      breaker:
        failures: 1                    # retryable failures in the window that open the breaker
        window_seconds: 60
      fallbacks: {gpt-4o: [llama]}     # general fallbacks (as groups.<m>.fallbacks.general)
      health_checks:                   # optional: a one-token chat to every deployment ...
        interval_seconds: 30           # ... this often
        timeout_seconds: 5
      groups:
        gpt-4o:
          strategy: latency            # round_robin (default) | weighted | least_busy | latency
                                       # | lowest_cost | usage
          exploration: 0.05            # latency: the share of requests that try another first
          fallbacks:
            general: [llama]           # any retryable failure, once the group is exhausted
            context_window: [gpt-4o-128k]  # the prompt is longer than the model's window
            content_policy: [claude]   # the provider's content filter refused the request
            rate_limited: [llama]      # every deployment of the group answered 429
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_RETRIES = 1
DEFAULT_COOLDOWN_SECONDS = 30.0
DEFAULT_BACKOFF_BASE_SECONDS = 0.05
DEFAULT_BACKOFF_MAX_SECONDS = 2.0
DEFAULT_RETRY_AFTER_MAX_SECONDS = 10.0
DEFAULT_BREAKER_FAILURES = 1
DEFAULT_BREAKER_WINDOW_SECONDS = 60.0
DEFAULT_EXPLORATION = 0.05
DEFAULT_HEALTH_INTERVAL_SECONDS = 30.0
DEFAULT_HEALTH_TIMEOUT_SECONDS = 5.0

Seconds = Annotated[float, Field(ge=0, le=3600)]
Strategy = Literal["round_robin", "weighted", "least_busy", "latency", "lowest_cost", "usage"]
ErrorClass = Literal["general", "context_window", "content_policy", "rate_limited"]
ERROR_CLASSES: tuple[ErrorClass, ...] = (
    "general",
    "context_window",
    "content_policy",
    "rate_limited",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Backoff(_Strict):
    base_seconds: Seconds = DEFAULT_BACKOFF_BASE_SECONDS
    max_seconds: Seconds = DEFAULT_BACKOFF_MAX_SECONDS
    retry_after_max_seconds: Seconds = DEFAULT_RETRY_AFTER_MAX_SECONDS


class Breaker(_Strict):
    failures: int = Field(DEFAULT_BREAKER_FAILURES, ge=1, le=1000)
    window_seconds: float = Field(DEFAULT_BREAKER_WINDOW_SECONDS, gt=0, le=86400)


class HealthChecks(_Strict):
    interval_seconds: float = Field(DEFAULT_HEALTH_INTERVAL_SECONDS, ge=1, le=86400)
    timeout_seconds: float = Field(DEFAULT_HEALTH_TIMEOUT_SECONDS, gt=0, le=300)


class Fallbacks(_Strict):
    general: list[str] = []
    context_window: list[str] = []
    content_policy: list[str] = []
    rate_limited: list[str] = []


class Group(_Strict):
    strategy: Strategy = "round_robin"
    exploration: float = Field(DEFAULT_EXPLORATION, ge=0, le=1)
    fallbacks: Fallbacks = Fallbacks()


class Router(_Strict):
    retries: int = Field(DEFAULT_RETRIES, ge=0, le=10)
    cooldown_seconds: float = Field(DEFAULT_COOLDOWN_SECONDS, gt=0, le=86400)
    backoff: Backoff = Backoff()
    breaker: Breaker = Breaker()
    fallbacks: dict[str, list[str]] = {}
    groups: dict[str, Group] = {}
    health_checks: HealthChecks | None = None  # no background probes unless set
    # One public name for another (issue 14): {alias: model}, the model deployed or matched by a
    # wildcard deployment (``anthropic/*``).
    aliases: dict[str, str] = {}

    def fallbacks_for(self, model: str, error_class: ErrorClass) -> list[str]:
        """The groups tried, in order, after ``model``'s group failed with ``error_class``: the
        group's own list for that class; for ``general`` (and for ``rate_limited`` when none is
        set) the general list, ``groups.<model>.fallbacks.general`` and then ``fallbacks``."""
        group = self.groups.get(model, Group()).fallbacks
        own: list[str] = getattr(group, error_class)
        if error_class in ("general", "rate_limited") and not own:
            own = group.general or self.fallbacks.get(model, [])
        return own

    def names(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Every model name this section refers to, with its key path (checked against the
        deployments by the whole config)."""
        found: list[tuple[tuple[str | int, ...], str]] = []
        for source, targets in self.fallbacks.items():
            found += [(("router", "fallbacks", source), n) for n in [source, *targets]]
        for alias, target in self.aliases.items():
            found.append((("router", "aliases", alias), target))
        for model, group in self.groups.items():
            found.append((("router", "groups", model), model))
            for kind in ERROR_CLASSES:
                where = ("router", "groups", model, "fallbacks", kind)
                found += [(where, n) for n in getattr(group.fallbacks, kind)]
        return found
