"""The ``conversations`` section of the config: what ``previous_response_id`` on
``POST /v1/responses`` can refer to, where it is kept and for how long (docs/api.md).

    conversations:
      backend: auto                    # auto (default): redis when governance.redis is set,
                                       # else memory | memory (this process only) | redis
                                       # (governance.redis: every replica and worker sees it)
      ttl_seconds: 2592000             # 30 days, as OpenAI keeps a response; from its creation
      max_entry_bytes: 4194304         # a larger turn is not kept (its follow-up is a 400)
      per_key_entries: 1000            # one key's turns; past it, its oldest go first
      per_key_bytes: 8388608           # memory: one key's turns together
      max_entries: 10000               # memory: every key's turns together
      max_bytes: 67108864              # memory: every key's turns together
      encryption_key: env:SEALGATE_CONVERSATIONS_KEY  # redis: a reference to 32 bytes (64 hex
                                       # digits or base64); without it each replica makes its own
                                       # at start, and a follow-up served by another replica or
                                       # worker cannot read the state (a 400 that says so)

Without the section the defaults above hold.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.config import fields

DEFAULT_TTL_SECONDS = 30 * 86400.0
DEFAULT_MAX_ENTRY_BYTES = 4 * 1024 * 1024  # the default server.max_body_bytes
DEFAULT_PER_KEY_ENTRIES = 1_000
DEFAULT_PER_KEY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class Conversations(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    backend: Literal["auto", "memory", "redis"] = "auto"
    ttl_seconds: float = Field(DEFAULT_TTL_SECONDS, gt=0, le=365 * 86400)
    max_entry_bytes: int = Field(DEFAULT_MAX_ENTRY_BYTES, ge=1024, le=64 * 1024 * 1024)
    per_key_entries: int = Field(DEFAULT_PER_KEY_ENTRIES, ge=1, le=1_000_000)
    per_key_bytes: int = Field(DEFAULT_PER_KEY_BYTES, ge=1024, le=1 << 40)
    max_entries: int = Field(DEFAULT_MAX_ENTRIES, ge=1, le=10_000_000)
    max_bytes: int = Field(DEFAULT_MAX_BYTES, ge=1024, le=1 << 40)
    encryption_key: str | None = None

    _credential = field_validator("encryption_key")(fields.reference)

    @model_validator(mode="after")
    def _entry_fits_a_key(self) -> Conversations:
        if self.max_entry_bytes > self.per_key_bytes:
            raise ValueError("max_entry_bytes must not be larger than per_key_bytes")
        return self

    def shared(self, redis_configured: bool) -> bool:
        """Whether the state lives in Redis (``auto``: when governance.redis is set)."""
        return self.backend == "redis" or (self.backend == "auto" and redis_configured)
