"""The field types admin request bodies share. Every body is strict: an unknown field is a 400."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from gateway.errors import InvalidRequest

Limit = Annotated[int, Field(ge=0, le=10**12)]  # requests or tokens per minute
Parallel = Annotated[int, Field(ge=1, le=10**6)]  # requests in flight at once
Name = Annotated[str, Field(min_length=1, max_length=200)]
Id = Annotated[str, Field(min_length=1, max_length=32)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Limits(Strict):
    """A PATCH of a user's or a team's limits: only the fields named change, null for no
    limit."""

    rpm_limit: Limit | None = None
    tpm_limit: Limit | None = None

    def named(self) -> dict[str, int | None]:
        """The fields the body named; InvalidRequest when it named none."""
        if not self.model_fields_set:
            raise InvalidRequest("nothing to change: name at least one limit")
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


class TeamLimits(Limits):
    max_parallel_requests: Parallel | None = None
