"""The field types admin request bodies share. Every body is strict: an unknown field is a 400."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Limit = Annotated[int, Field(ge=0, le=10**12)]  # requests or tokens per minute
Name = Annotated[str, Field(min_length=1, max_length=200)]
Id = Annotated[str, Field(min_length=1, max_length=32)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Limits(Strict):
    """A PATCH of a key's or a team's limits: both are set, None for no limit."""

    rpm_limit: Limit | None = None
    tpm_limit: Limit | None = None
