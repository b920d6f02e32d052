"""The MCP gateway's state in the database: approvals and grants, and an in-memory snapshot of
both for the request path (reloaded after a change through this replica's admin API, and at
most ``refresh_seconds`` old otherwise, so another replica's change applies within that time).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, insert, select

from gateway.mcp.pins import Approval
from gateway.store.tables import mcp_approvals, mcp_grants

DEFAULT_REFRESH_SECONDS = 5.0


@dataclass(frozen=True)
class Snapshot:
    approvals: dict[tuple[str, str], Approval] = field(default_factory=dict)
    grants: dict[str, frozenset[str]] = field(default_factory=dict)  # principal -> patterns

    def grants_of(self, principal: str) -> frozenset[str]:
        return self.grants.get(principal, frozenset())


class McpStore:
    def __init__(
        self,
        engine: Engine,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._refresh = refresh_seconds
        self._clock = clock
        self.snapshot = Snapshot()
        self._loaded_at = float("-inf")

    def stale(self) -> bool:
        return self._clock() - self._loaded_at >= self._refresh

    def load(self) -> Snapshot:
        with self._engine.connect() as connection:
            approvals = {
                (r.server, r.tool): Approval(
                    r.server, r.tool, r.digest, r.approved_by, _aware(r.approved_at)
                )
                for r in connection.execute(select(mcp_approvals))
            }
            grants: defaultdict[str, set[str]] = defaultdict(set)
            for r in connection.execute(select(mcp_grants)):
                grants[r.principal].add(r.pattern)
        self.snapshot = Snapshot(approvals, {p: frozenset(s) for p, s in grants.items()})
        self._loaded_at = self._clock()
        return self.snapshot

    def approve(self, server: str, tool: str, digest: str, by: str) -> Approval:
        at = datetime.now(UTC)
        with self._engine.begin() as connection:
            connection.execute(
                delete(mcp_approvals).where(
                    mcp_approvals.c.server == server, mcp_approvals.c.tool == tool
                )
            )
            connection.execute(
                insert(mcp_approvals).values(
                    server=server, tool=tool, digest=digest, approved_by=by, approved_at=at
                )
            )
        self.load()
        return Approval(server, tool, digest, by, at)

    def withdraw(self, server: str, tool: str) -> bool:
        with self._engine.begin() as connection:
            gone = connection.execute(
                delete(mcp_approvals).where(
                    mcp_approvals.c.server == server, mcp_approvals.c.tool == tool
                )
            ).rowcount
        self.load()
        return bool(gone)

    def set_grants(self, principal: str, patterns: list[str], by: str) -> None:
        """Replace ``principal``'s allowlist with ``patterns`` (empty: it may call nothing)."""
        at = datetime.now(UTC)
        with self._engine.begin() as connection:
            connection.execute(delete(mcp_grants).where(mcp_grants.c.principal == principal))
            for pattern in sorted(set(patterns)):
                connection.execute(
                    insert(mcp_grants).values(
                        principal=principal, pattern=pattern, granted_by=by, granted_at=at
                    )
                )
        self.load()


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
