"""The dashboard's sessions: who signed in, kept server-side so every replica shares them and a
logout ends one everywhere.

The browser holds a random secret in a cookie; the table holds its SHA-256 (``ui_sessions``), so
neither a database reader nor a backup can sign in. A session ends at whichever comes first: its
idle expiry (no request for ``idle_seconds``), its absolute expiry (``max_seconds`` after
sign-in), a logout, or, for one made from an admin token, that token's revocation (checked on
every request by the caller of ``lookup``).

Each session carries its own CSRF token, compared in constant time with the one a form sends
(``csrf_matches``); it is useless without the cookie, which a cross-site request never carries
(SameSite=Strict) and a script cannot read (HttpOnly).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update

from gateway.governance.audit import Actor
from gateway.store.tables import ui_logins, ui_sessions

DEFAULT_IDLE_SECONDS = 30 * 60
DEFAULT_MAX_SECONDS = 12 * 3600
LOGIN_SECONDS = 10 * 60  # an OpenID Connect sign-in must come back within this
TOUCH_SECONDS = 30.0  # seen_at is written at most this often (not one write per page)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    actor: Actor
    csrf: str
    token_id: str | None
    created_at: datetime
    seen_at: datetime

    def csrf_matches(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


@dataclass(frozen=True, slots=True)
class PendingLogin:
    verifier: str
    nonce: str


class Sessions:
    def __init__(
        self,
        engine: Engine,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
    ) -> None:
        self._engine = engine
        self.idle = timedelta(seconds=idle_seconds)
        self.max = timedelta(seconds=max_seconds)

    def start(self, actor: Actor, token_id: str | None = None) -> tuple[str, Session]:
        """A new session for ``actor``: the cookie's secret (returned once) and the session."""
        secret = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        session = Session(actor, secrets.token_urlsafe(32), token_id, now, now)
        with self._engine.begin() as connection:
            connection.execute(
                insert(ui_sessions).values(
                    id_hash=digest(secret),
                    actor=actor.name[:64],
                    role=actor.role,
                    team_id=actor.team_id,
                    csrf=session.csrf,
                    token_id=token_id,
                    created_at=now,
                    seen_at=now,
                )
            )
        return secret, session

    def lookup(self, secret: str | None, now: datetime | None = None) -> Session | None:
        """The live session the cookie's secret names, its idle clock moved on; None when there
        is none, or it has expired or been ended."""
        if not secret:
            return None
        now = now or datetime.now(UTC)
        key = digest(secret)
        with self._engine.begin() as connection:
            row = connection.execute(
                select(ui_sessions).where(ui_sessions.c.id_hash == key)
            ).first()
            if row is None or row.revoked_at is not None:
                return None
            created, seen = _aware(row.created_at), _aware(row.seen_at)
            if now - created >= self.max or now - seen >= self.idle:
                connection.execute(delete(ui_sessions).where(ui_sessions.c.id_hash == key))
                return None
            if (now - seen).total_seconds() >= TOUCH_SECONDS:
                connection.execute(
                    update(ui_sessions).where(ui_sessions.c.id_hash == key).values(seen_at=now)
                )
                seen = now
        actor = Actor(row.actor, row.role, row.team_id)
        return Session(actor, row.csrf, row.token_id, created, seen)

    def end(self, secret: str | None) -> bool:
        """End the session (logout): on every replica at once, since they all read this row."""
        if not secret:
            return False
        with self._engine.begin() as connection:
            result = connection.execute(
                update(ui_sessions)
                .where(ui_sessions.c.id_hash == digest(secret), ui_sessions.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        return bool(result.rowcount)

    def sweep(self, now: datetime | None = None) -> int:
        """Delete ended and expired sessions and stale sign-ins; how many sessions went."""
        now = now or datetime.now(UTC)
        with self._engine.begin() as connection:
            gone = connection.execute(
                delete(ui_sessions).where(
                    (ui_sessions.c.revoked_at.is_not(None))
                    | (ui_sessions.c.created_at < now - self.max)
                    | (ui_sessions.c.seen_at < now - self.idle)
                )
            ).rowcount
            connection.execute(
                delete(ui_logins).where(
                    ui_logins.c.created_at < now - timedelta(seconds=LOGIN_SECONDS)
                )
            )
        return int(gone or 0)

    # OpenID Connect sign-ins under way (the state, PKCE verifier and nonce between redirects)

    def begin_login(self, state: str, verifier: str, nonce: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                insert(ui_logins).values(
                    state_hash=digest(state),
                    verifier=verifier,
                    nonce=nonce,
                    created_at=datetime.now(UTC),
                )
            )

    def finish_login(self, state: str | None) -> PendingLogin | None:
        """The sign-in ``state`` names, taken out (a state works once); None when unknown or
        older than LOGIN_SECONDS."""
        if not state:
            return None
        key = digest(state)
        with self._engine.begin() as connection:
            row = connection.execute(select(ui_logins).where(ui_logins.c.state_hash == key)).first()
            if row is None:
                return None
            connection.execute(delete(ui_logins).where(ui_logins.c.state_hash == key))
        if datetime.now(UTC) - _aware(row.created_at) > timedelta(seconds=LOGIN_SECONDS):
            return None
        return PendingLogin(row.verifier, row.nonce)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
