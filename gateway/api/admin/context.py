"""What every admin router shares: the caller as a dependency, the stores, and the audit trail.

Every admin route declares ``who: Caller`` (a FastAPI dependency): the caller, resolved from
``Authorization: Bearer`` (the gateway admin credential or an admin token) by the admin gate
(``gate.py``) before anything of the body is read; what each role may do is decided in
``gateway.governance.roles``. Every change
is written to the audit log with ``record`` (who, what, when; never a key or token).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy import Engine

from gateway.auth import AdminCredential, Authenticator
from gateway.errors import NotFound
from gateway.governance import principals, roles
from gateway.governance.audit import Actor, AuditLog
from gateway.governance.core import Governance
from gateway.governance.oidc import OidcClient
from gateway.governance.tenancy import Team, Tenancy
from gateway.mcp.aggregator import Aggregator
from gateway.store.keys import KeyStore

log = logging.getLogger("sealgate.admin")
T = TypeVar("T")

LOG_MESSAGES = {
    "key.create": "virtual key created",
    "key.revoke": "virtual key revoked",
    "key.rotate": "virtual key rotated",
    "key.block": "virtual key blocked",
    "key.unblock": "virtual key unblocked",
}
ACTOR = "sealgate.admin.actor"  # where the gate leaves the resolved caller in the request state


@dataclass
class AdminContext:
    credential: AdminCredential
    engine: Engine
    keys: KeyStore
    auth: Authenticator
    governance: Governance
    models: Callable[[], list[str]]
    mcp: Aggregator | None = None  # the MCP gateway (gateway.api.admin.mcp)
    oidc: OidcClient | None = None  # JWT bearers from the identity provider (config ui.oidc)

    def __post_init__(self) -> None:
        self.tenancy: Tenancy = self.governance.tenancy
        self.audit = AuditLog(self.engine)

    async def resolve(self, authorization: str | None) -> Actor:
        """Who an ``Authorization`` header names; AuthenticationFailed when nobody."""
        return await principals.resolve(authorization, self.credential, self.tenancy, self.oidc)

    async def caller(self, request: Request) -> Actor:
        """The FastAPI dependency every admin route takes: who is calling (as the gate found
        it, else looked up now)."""
        found = request.scope.get("state", {}).get(ACTOR)
        if isinstance(found, Actor):
            return found
        return await self.resolve(request.headers.get("authorization"))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """A blocking store call, in a worker thread."""
        return await anyio.to_thread.run_sync(fn, *args)

    async def record(self, who: Actor, action: str, target: str, detail: dict[str, Any]) -> None:
        await self.run(self.audit.record, who, action, target, detail)
        message = LOG_MESSAGES.get(action, "admin action")
        log.info(message, extra={"sg_actor": who.name, "sg_action": action, "sg_target": target})

    async def refresh(self) -> None:
        """Reload governance's snapshot after a change, so it applies on this replica at once."""
        await self.run(self.governance.refresh)

    async def team_or_404(self, who: Actor, team_id: str, kind: roles.Kind = "teams") -> Team:
        """The team; 404 when it does not exist or ``who`` may not see it as ``kind`` (its
        spend, for reports; roles.hidden)."""
        team = await self.run(self.tenancy.team, team_id)
        if team is None or roles.hidden(who, kind, team_id):
            raise NotFound(f"no team with id {team_id!r}", code="team_not_found")
        return team


async def _caller(request: Request) -> Actor:
    context: AdminContext = request.app.state.admin
    return await context.caller(request)


# The dependency every admin route takes; the app holds its AdminContext as ``state.admin``.
Caller = Annotated[Actor, Depends(_caller)]
