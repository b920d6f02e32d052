"""Who is calling the admin API: the gateway admin credential, an admin token, or (with
``ui.oidc`` configured) a JWT the identity provider signed, its role mapped from its claims."""

from __future__ import annotations

import anyio.to_thread

from gateway.auth import AdminCredential
from gateway.errors import AuthenticationFailed
from gateway.governance.audit import Actor
from gateway.governance.oidc import OidcClient, looks_like_jwt
from gateway.governance.tenancy import Tenancy
from gateway.tokens import ADMIN_TOKEN

ADMIN = Actor("admin", "admin")
MISSING = "admin credential required: 'Authorization: Bearer <admin key or admin token>'"


async def resolve(
    authorization: str | None,
    credential: AdminCredential,
    tenancy: Tenancy,
    oidc: OidcClient | None = None,
) -> Actor:
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed(MISSING)
    if credential.matches(token):
        return ADMIN
    if oidc is not None and looks_like_jwt(token):
        return await anyio.to_thread.run_sync(lambda: oidc.actor(oidc.verify(token)))
    token_id = ADMIN_TOKEN.id_of(token)
    record = await anyio.to_thread.run_sync(tenancy.token, token_id) if token_id else None
    if record is None or not record.matches(token):
        raise AuthenticationFailed("invalid admin credential")
    if record.revoked_at is not None:
        raise AuthenticationFailed("this admin token has been revoked", code="token_revoked")
    return Actor(f"token:{record.id}", record.role, record.team_id)
