"""The ``cache`` section of the config: the exact-match response cache (docs/routing.md).

    cache:
      backend: memory                  # memory (one replica) | redis (governance.redis, shared)
      ttl_seconds: 300
      scope: team                      # team (default): an answer is served only to the team
                                       # (or, for a key without a team, the key) it was made for;
                                       # shared: to every caller (the operator says so)
      max_entries: 10000               # memory: the least recently used go first
      max_bytes: 67108864              # memory: all entries together
      max_entry_bytes: 1048576         # a larger answer is not cached
      encryption_key: env:SEALGATE_CACHE_KEY  # redis: a reference to 32 bytes (64 hex digits or
                                       # base64); without it each replica makes its own at start
                                       # (entries are then readable only by the replica that
                                       # wrote them)

Without the section nothing is cached. A key opts out with ``"cache": false`` in its metadata.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.config import fields

DEFAULT_TTL_SECONDS = 300.0
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_ENTRY_BYTES = 1024 * 1024


class Cache(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    backend: Literal["memory", "redis"] = "memory"
    ttl_seconds: float = Field(DEFAULT_TTL_SECONDS, gt=0, le=30 * 86400)
    scope: Literal["team", "shared"] = "team"
    max_entries: int = Field(DEFAULT_MAX_ENTRIES, ge=1, le=10_000_000)
    max_bytes: int = Field(DEFAULT_MAX_BYTES, ge=1024, le=1 << 40)
    max_entry_bytes: int = Field(DEFAULT_MAX_ENTRY_BYTES, ge=1024, le=256 * 1024 * 1024)
    encryption_key: str | None = None

    _credential = field_validator("encryption_key")(fields.reference)
