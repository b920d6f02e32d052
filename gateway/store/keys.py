"""Virtual keys: created, shown once, stored as a SHA-256 hash, looked up by id, revocable.

A key reads ``sk-sg-<id>-<secret>`` (``gateway.tokens``, shared with admin tokens): the id finds
the row; the hash of the whole key is compared in constant time.

Rotating a key keeps its id (so its limits, budgets, spend and reports stay its own) and gives it
a new secret; the hash of the key it replaced is kept beside the new one with the moment its
grace period ends (``previous_expires_at``). Every replica compares that stored moment with its
clock, so the old key stops everywhere at once, however long each replica has cached the row.
Blocking keeps the row and refuses the key until it is unblocked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway import tokens
from gateway.store.tables import virtual_keys


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    key_hash: str
    models: tuple[str, ...]
    metadata: dict[str, Any] = field(hash=False)
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    team_id: str | None = None
    user_id: str | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    key_alias: str | None = None
    blocked_at: datetime | None = None
    previous_hash: str | None = field(default=None, repr=False)
    previous_expires_at: datetime | None = None
    max_parallel_requests: int | None = None

    def matches(self, key: str) -> bool:
        return tokens.matches(self.key_hash, key)

    def replaced(self, key: str) -> bool:
        """Whether ``key`` is the one this key's last rotation replaced (valid or not)."""
        return self.previous_hash is not None and tokens.matches(self.previous_hash, key)

    def in_grace(self, now: datetime) -> bool:
        return self.previous_expires_at is not None and now < self.previous_expires_at

    def allows(self, model: str) -> bool:
        if "*" in self.models or model in self.models:
            return True
        # a wildcard (issue 14): "anthropic/*" allows every "anthropic/<name>"
        return any(m.endswith("*") and model.startswith(m[:-1]) for m in self.models)

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def public(self) -> dict[str, Any]:
        """The listing view: everything but the hash."""
        return {
            "id": self.id,
            "models": list(self.models),
            "metadata": self.metadata,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "team_id": self.team_id,
            "user_id": self.user_id,
            "rpm_limit": self.rpm_limit,
            "tpm_limit": self.tpm_limit,
            "key_alias": self.key_alias,
            "blocked": self.blocked_at is not None,
            "blocked_at": _iso(self.blocked_at),
            "previous_key_expires_at": _iso(self.previous_expires_at),
            "max_parallel_requests": self.max_parallel_requests,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # SQLite hands back naive datetimes
    return value


def _record(row: Any) -> KeyRecord:
    return KeyRecord(
        id=row.id,
        key_hash=row.key_hash,
        models=tuple(json.loads(row.models)),
        metadata=json.loads(row.metadata),
        created_at=_aware(row.created_at) or datetime.now(UTC),
        expires_at=_aware(row.expires_at),
        revoked_at=_aware(row.revoked_at),
        team_id=row.team_id,
        user_id=row.user_id,
        rpm_limit=row.rpm_limit,
        tpm_limit=row.tpm_limit,
        key_alias=row.key_alias,
        blocked_at=_aware(row.blocked_at),
        previous_hash=row.previous_hash,
        previous_expires_at=_aware(row.previous_expires_at),
        max_parallel_requests=row.max_parallel_requests,
    )


class KeyStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(
        self,
        models: list[str],
        expires_at: datetime | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        team_id: str | None = None,
        user_id: str | None = None,
        rpm_limit: int | None = None,
        tpm_limit: int | None = None,
        key_alias: str | None = None,
        max_parallel_requests: int | None = None,
    ) -> tuple[str, KeyRecord]:
        """A new key and its record; ``AliasTaken`` when another key has ``key_alias``."""
        key_id, key = tokens.VIRTUAL_KEY.mint()
        record = KeyRecord(
            id=key_id,
            key_hash=tokens.digest(key),
            models=tuple(models),
            metadata=dict(metadata or {}),
            created_at=datetime.now(UTC),
            expires_at=expires_at,
            revoked_at=None,
            team_id=team_id,
            user_id=user_id,
            rpm_limit=rpm_limit,
            tpm_limit=tpm_limit,
            key_alias=key_alias,
            max_parallel_requests=max_parallel_requests,
        )
        with _alias_unique(key_alias), self._engine.begin() as connection:
            connection.execute(
                insert(virtual_keys).values(
                    id=record.id,
                    key_hash=record.key_hash,
                    models=json.dumps(list(record.models)),
                    metadata=json.dumps(record.metadata),
                    created_at=record.created_at,
                    expires_at=record.expires_at,
                    revoked_at=None,
                    team_id=team_id,
                    user_id=user_id,
                    rpm_limit=rpm_limit,
                    tpm_limit=tpm_limit,
                    key_alias=key_alias,
                    max_parallel_requests=max_parallel_requests,
                )
            )
        return key, record

    def get(self, key_id: str) -> KeyRecord | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(virtual_keys).where(virtual_keys.c.id == key_id)
            ).first()
        return _record(row) if row is not None else None

    def list(self, team_id: str | None = None) -> list[KeyRecord]:
        query = select(virtual_keys).order_by(virtual_keys.c.created_at)
        if team_id is not None:
            query = query.where(virtual_keys.c.team_id == team_id)
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [_record(row) for row in rows]

    def revoke(self, key_id: str) -> bool:
        with self._engine.begin() as connection:
            result = connection.execute(
                update(virtual_keys)
                .where(virtual_keys.c.id == key_id, virtual_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        return result.rowcount > 0

    def set_limits(self, key_id: str, rpm_limit: int | None, tpm_limit: int | None) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                update(virtual_keys)
                .where(virtual_keys.c.id == key_id)
                .values(rpm_limit=rpm_limit, tpm_limit=tpm_limit)
            )

    def update(self, key_id: str, **fields: Any) -> None:
        """Change a key in place: any of ``models``, ``metadata``, ``key_alias``, ``rpm_limit``,
        ``tpm_limit``, ``max_parallel_requests`` (``AliasTaken`` when another key has the
        alias)."""
        values = dict(fields)
        if not values:
            return
        if "models" in values:
            values["models"] = json.dumps(list(values["models"]))
        if "metadata" in values:
            values["metadata"] = json.dumps(values["metadata"])
        with _alias_unique(values.get("key_alias")), self._engine.begin() as connection:
            connection.execute(
                update(virtual_keys).where(virtual_keys.c.id == key_id).values(**values)
            )

    def set_blocked(self, key_id: str, blocked: bool) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                update(virtual_keys)
                .where(virtual_keys.c.id == key_id)
                .values(blocked_at=datetime.now(UTC) if blocked else None)
            )

    def rotate(self, key_id: str, grace_ends: datetime) -> str | None:
        """Give the key a new secret; the current one keeps working until ``grace_ends`` (a key
        rotated again before then loses the older one at once). The new key, or None when the
        key does not exist or is revoked."""
        _, key = tokens.VIRTUAL_KEY.mint(key_id)
        with self._engine.begin() as connection:
            row = connection.execute(
                select(virtual_keys.c.key_hash)
                .where(virtual_keys.c.id == key_id, virtual_keys.c.revoked_at.is_(None))
                .with_for_update()
            ).first()
            if row is None:
                return None
            connection.execute(
                update(virtual_keys)
                .where(virtual_keys.c.id == key_id)
                .values(
                    key_hash=tokens.digest(key),
                    previous_hash=row.key_hash,
                    previous_expires_at=grace_ends,
                )
            )
        return key


class AliasTaken(Exception):
    """Another key already has this alias."""


@contextmanager
def _alias_unique(alias: str | None) -> Iterator[None]:
    """Turn the unique index's refusal of a taken alias into ``AliasTaken``."""
    try:
        yield
    except IntegrityError:
        if alias is None:
            raise
        raise AliasTaken(alias) from None
