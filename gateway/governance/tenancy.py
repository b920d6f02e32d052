"""Teams, users, budgets, project and tag limits, and admin tokens in the database (sync;
callers use a worker thread).

Admin tokens read ``sg-adm-<id>-<secret>`` and are kept like virtual keys (``gateway.tokens``):
shown once, stored as the SHA-256 of the whole token, compared in constant time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway import tokens
from gateway.errors import Conflict
from gateway.governance.periods import Period
from gateway.store.tables import admin_tokens, budgets, scope_limits, teams, users

Scope = Literal["key", "team", "user", "project", "tag"]
LimitScope = Literal["project", "tag"]
Role = Literal["admin", "team_admin", "viewer", "metrics"]
new_id = tokens.new_id


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    name: str
    rpm_limit: int | None
    tpm_limit: int | None
    metadata: dict[str, Any]
    created_at: datetime
    max_parallel_requests: int | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "rpm_limit": self.rpm_limit,
            "tpm_limit": self.tpm_limit,
            "max_parallel_requests": self.max_parallel_requests,
            "metadata": self.metadata,
            "created_at": _iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    team_id: str | None
    created_at: datetime
    rpm_limit: int | None = None
    tpm_limit: int | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "team_id": self.team_id,
            "rpm_limit": self.rpm_limit,
            "tpm_limit": self.tpm_limit,
            "created_at": _iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class Budget:
    id: str
    scope: Scope
    scope_id: str
    period: Period
    max_nanos: int
    soft_nanos: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ScopeLimit:
    """The request and token limits per minute the admin API set for one project or tag."""

    scope: LimitScope
    scope_id: str
    rpm_limit: int | None
    tpm_limit: int | None
    updated_by: str
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "scope_id": self.scope_id,
            "rpm_limit": self.rpm_limit,
            "tpm_limit": self.tpm_limit,
            "source": "admin",
            "updated_by": self.updated_by,
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class AdminToken:
    id: str
    token_hash: str
    role: Role
    team_id: str | None
    name: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None

    def matches(self, token: str) -> bool:
        return tokens.matches(self.token_hash, token)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            "team_id": self.team_id,
            "name": self.name,
            "created_by": self.created_by,
            "created_at": _iso(self.created_at),
            "revoked_at": _iso(self.revoked_at),
        }


def _team(row: Any) -> Team:
    return Team(
        row.id,
        row.name,
        row.rpm_limit,
        row.tpm_limit,
        json.loads(row.metadata),
        _aware(row.created_at) or datetime.now(UTC),
        row.max_parallel_requests,
    )


def _user(row: Any) -> User:
    created = _aware(row.created_at) or datetime.now(UTC)
    return User(row.id, row.name, row.team_id, created, row.rpm_limit, row.tpm_limit)


def _budget(row: Any) -> Budget:
    return Budget(
        row.id,
        row.scope,
        row.scope_id,
        row.period,
        row.max_nanos,
        row.soft_nanos,
        _aware(row.created_at) or datetime.now(UTC),
    )


def _scope_limit(row: Any) -> ScopeLimit:
    return ScopeLimit(
        row.scope,
        row.scope_id,
        row.rpm_limit,
        row.tpm_limit,
        row.updated_by,
        _aware(row.updated_at) or datetime.now(UTC),
    )


def _token(row: Any) -> AdminToken:
    return AdminToken(
        row.id,
        row.token_hash,
        row.role,
        row.team_id,
        row.name,
        row.created_by,
        _aware(row.created_at) or datetime.now(UTC),
        _aware(row.revoked_at),
    )


class Tenancy:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _insert(self, table: Any, what: str, **values: Any) -> None:
        try:
            with self._engine.begin() as connection:
                connection.execute(insert(table).values(**values))
        except IntegrityError:
            raise Conflict(f"{what} already exists") from None

    # -- teams ------------------------------------------------------------------------------
    def create_team(
        self,
        name: str,
        rpm: int | None,
        tpm: int | None,
        metadata: dict[str, Any],
        max_parallel: int | None = None,
    ) -> Team:
        team = Team(new_id(), name, rpm, tpm, metadata, datetime.now(UTC), max_parallel)
        self._insert(
            teams,
            f"a team named {name!r}",
            id=team.id,
            name=name,
            rpm_limit=rpm,
            tpm_limit=tpm,
            metadata=json.dumps(metadata),
            created_at=team.created_at,
            max_parallel_requests=max_parallel,
        )
        return team

    def teams(self) -> list[Team]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(teams).order_by(teams.c.created_at)).all()
        return [_team(r) for r in rows]

    def team(self, team_id: str) -> Team | None:
        with self._engine.connect() as connection:
            row = connection.execute(select(teams).where(teams.c.id == team_id)).first()
        return _team(row) if row is not None else None

    def set_team_limits(self, team_id: str, **limits: int | None) -> None:
        """Set any of ``rpm_limit``, ``tpm_limit``, ``max_parallel_requests``."""
        if not limits:
            return
        with self._engine.begin() as connection:
            connection.execute(update(teams).where(teams.c.id == team_id).values(**limits))

    # -- users ------------------------------------------------------------------------------
    def create_user(
        self, name: str, team_id: str | None, rpm: int | None = None, tpm: int | None = None
    ) -> User:
        user = User(new_id(), name, team_id, datetime.now(UTC), rpm, tpm)
        self._insert(
            users,
            f"a user named {name!r}",
            id=user.id,
            name=name,
            team_id=team_id,
            created_at=user.created_at,
            rpm_limit=rpm,
            tpm_limit=tpm,
        )
        return user

    def set_user_limits(self, user_id: str, **limits: int | None) -> None:
        """Set any of ``rpm_limit``, ``tpm_limit``."""
        if not limits:
            return
        with self._engine.begin() as connection:
            connection.execute(update(users).where(users.c.id == user_id).values(**limits))

    def users(self, team_id: str | None = None) -> list[User]:
        query = select(users).order_by(users.c.created_at)
        if team_id is not None:
            query = query.where(users.c.team_id == team_id)
        with self._engine.connect() as connection:
            return [_user(r) for r in connection.execute(query).all()]

    def user(self, user_id: str) -> User | None:
        with self._engine.connect() as connection:
            row = connection.execute(select(users).where(users.c.id == user_id)).first()
        return _user(row) if row is not None else None

    # -- budgets ----------------------------------------------------------------------------
    def create_budget(
        self, scope: Scope, scope_id: str, period: Period, max_nanos: int, soft: int | None
    ) -> Budget:
        budget = Budget(new_id(), scope, scope_id, period, max_nanos, soft, datetime.now(UTC))
        self._insert(
            budgets,
            f"a {period} budget for {scope} {scope_id}",
            id=budget.id,
            scope=scope,
            scope_id=scope_id,
            period=period,
            max_nanos=max_nanos,
            soft_nanos=soft,
            created_at=budget.created_at,
        )
        return budget

    def budgets(self) -> list[Budget]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(budgets).order_by(budgets.c.created_at)).all()
        return [_budget(r) for r in rows]

    def budget(self, budget_id: str) -> Budget | None:
        with self._engine.connect() as connection:
            row = connection.execute(select(budgets).where(budgets.c.id == budget_id)).first()
        return _budget(row) if row is not None else None

    def set_budget_amounts(self, budget_id: str, max_nanos: int, soft: int | None) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                update(budgets)
                .where(budgets.c.id == budget_id)
                .values(max_nanos=max_nanos, soft_nanos=soft)
            )

    def delete_budget(self, budget_id: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(delete(budgets).where(budgets.c.id == budget_id))

    # -- project and tag limits -------------------------------------------------------------
    def scope_limits(self) -> list[ScopeLimit]:
        query = select(scope_limits).order_by(scope_limits.c.scope, scope_limits.c.scope_id)
        with self._engine.connect() as connection:
            return [_scope_limit(r) for r in connection.execute(query).all()]

    def set_scope_limits(
        self, scope: LimitScope, scope_id: str, rpm: int | None, tpm: int | None, by: str
    ) -> ScopeLimit:
        """Set (create or replace) one project's or tag's limits; None is no limit."""
        limit = ScopeLimit(scope, scope_id, rpm, tpm, by, datetime.now(UTC))
        values = {
            "rpm_limit": rpm,
            "tpm_limit": tpm,
            "updated_by": by,
            "updated_at": limit.updated_at,
        }
        where = (scope_limits.c.scope == scope, scope_limits.c.scope_id == scope_id)
        for attempt in range(2):
            try:
                with self._engine.begin() as connection:
                    changed = connection.execute(update(scope_limits).where(*where).values(values))
                    if changed.rowcount == 0:
                        connection.execute(
                            insert(scope_limits).values(scope=scope, scope_id=scope_id, **values)
                        )
                return limit
            except IntegrityError:  # another writer inserted it first: update theirs
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def delete_scope_limits(self, scope: LimitScope, scope_id: str) -> bool:
        """Remove the admin API's limits of one project or tag; False when it had none."""
        where = (scope_limits.c.scope == scope, scope_limits.c.scope_id == scope_id)
        with self._engine.begin() as connection:
            return connection.execute(delete(scope_limits).where(*where)).rowcount > 0

    # -- admin tokens -----------------------------------------------------------------------
    def create_token(
        self, role: Role, team_id: str | None, name: str, created_by: str
    ) -> tuple[str, AdminToken]:
        token_id, token = tokens.ADMIN_TOKEN.mint()
        record = AdminToken(
            token_id,
            tokens.digest(token),
            role,
            team_id,
            name,
            created_by,
            datetime.now(UTC),
            None,
        )
        self._insert(
            admin_tokens,
            "that token",
            id=record.id,
            token_hash=record.token_hash,
            role=role,
            team_id=team_id,
            name=name,
            created_by=created_by,
            created_at=record.created_at,
            revoked_at=None,
        )
        return token, record

    def token(self, token_id: str) -> AdminToken | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(admin_tokens).where(admin_tokens.c.id == token_id)
            ).first()
        return _token(row) if row is not None else None

    def tokens(self) -> list[AdminToken]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(admin_tokens).order_by(admin_tokens.c.created_at)
            ).all()
        return [_token(r) for r in rows]

    def revoke_token(self, token_id: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                update(admin_tokens)
                .where(admin_tokens.c.id == token_id, admin_tokens.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
