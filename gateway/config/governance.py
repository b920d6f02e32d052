"""The ``governance`` section of the config: counters (in-process or Redis), what happens when
Redis is down, token estimates, the spend outbox, and per-deployment limits and price overrides.

    governance:
      counters: redis                  # memory (default) | redis
      redis:
        url: redis://10.0.0.5:6379/0   # no password in the URL
        prefix: sealgate
        on_down: fail_closed           # fail_closed (default) | local
      default_max_tokens: 4096         # reserved when a request names no max_tokens
      refresh_seconds: 5
      default_prices: null             # the price of a deployment the bundled table lacks
      price_file: null                 # the operator's own price table (JSON), signed:
      price_key: null                  #   the P-256 public key (PEM) it must verify with
      outbox:
        flush_seconds: 0.05            # a spend record is durable within this, whatever the
                                       # database does (database first, else the fsync'd file)
        durable_answers: true          # an answer waits until its record is durable
      deployments:
        gpt-4o/openai:                 # a deployment's id (or model/provider)
          rpm: 500
          tpm: 200000
          prices: {input: "2.50", cached_input: "1.25", output: "10.00"}
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_MAX_TOKENS = 4096
DEFAULT_REFRESH_SECONDS = 5.0
# max_parallel_requests: a request counts as in flight until it settles, and for at least this
# long; a replica that dies with requests in flight holds them for at most twice this long.
DEFAULT_IN_FLIGHT_SECONDS = 900.0
DEFAULT_REDIS_TIMEOUT = 0.5
DEFAULT_OUTBOX_FLUSH_SECONDS = 0.05

Limit = Annotated[int, Field(ge=0, le=10**12)]
Price = Annotated[Decimal, Field(ge=0, le=100000, decimal_places=6)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Prices(_Strict):
    """USD per million tokens. ``cached_input`` and ``cache_write`` default to ``input``."""

    input: Price
    output: Price = Decimal(0)
    cached_input: Price | None = None
    cache_write: Price | None = None


class DeploymentGovernance(_Strict):
    rpm: Limit | None = None
    tpm: Limit | None = None
    prices: Prices | None = None


class ScopeLimits(_Strict):
    """Requests and tokens per minute for everything attributed to one project or one tag."""

    rpm: Limit | None = None
    tpm: Limit | None = None


class Redis(_Strict):
    url: str
    prefix: str = Field("sealgate", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    on_down: Literal["fail_closed", "local"] = "fail_closed"
    timeout_seconds: float = Field(DEFAULT_REDIS_TIMEOUT, gt=0, le=30)

    @field_validator("url")
    @classmethod
    def _no_password(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError("expected redis://host:port/db or rediss://host:port/db")
        if parts.password:
            raise ValueError("a password in the Redis URL is refused: it would sit in the config")
        return value


class Outbox(_Strict):
    flush_seconds: float = Field(DEFAULT_OUTBOX_FLUSH_SECONDS, gt=0, le=10)
    retry_seconds: float = Field(1.0, gt=0, le=300)
    # False: answers go out at once and a hard kill can lose the last flush_seconds of records
    # (docs/governance.md has the measured cost of true).
    durable_answers: bool = True


class Governance(_Strict):
    counters: Literal["memory", "redis"] = "memory"
    redis: Redis | None = None
    default_max_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=1, le=10**7)
    refresh_seconds: float = Field(DEFAULT_REFRESH_SECONDS, gt=0, le=3600)
    in_flight_seconds: float = Field(DEFAULT_IN_FLIGHT_SECONDS, ge=60, le=86400)
    project_header: bool = True
    # How often each replica delivers again the budget alerts a sink failed to take.
    alert_retry_seconds: float = Field(30.0, ge=0.1, le=3600)
    outbox: Outbox = Outbox()
    # A deployment whose price is neither set below nor in the bundled table costs this; without
    # it, such a deployment refuses start-up (it would count as free and escape every budget).
    default_prices: Prices | None = None
    # The operator's price table and the key it is signed with (gateway/governance/price_file.py).
    price_file: str | None = None
    price_key: str | None = None
    deployments: dict[str, DeploymentGovernance] = {}
    projects: dict[str, ScopeLimits] = {}
    tags: dict[str, ScopeLimits] = {}

    @model_validator(mode="after")
    def _price_file_signed(self) -> Governance:
        if self.price_file is not None and self.price_key is None:
            raise ValueError(
                "price_file needs price_key: a price file is used only when its signature "
                "verifies with that public key"
            )
        return self

    @model_validator(mode="after")
    def _redis_when_asked(self) -> Governance:
        if self.counters == "redis" and self.redis is None:
            raise ValueError("counters: redis needs a redis section with its url")
        return self
