"""Virtual keys: created, shown once, stored as a SHA-256 hash, looked up by id, revocable.

A key reads ``sk-sg-<id>-<secret>`` (``gateway.tokens``, shared with admin tokens): the id finds
the row; the hash of the whole key is compared in constant time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

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

    def matches(self, key: str) -> bool:
        return tokens.matches(self.key_hash, key)

    def allows(self, model: str) -> bool:
        return "*" in self.models or model in self.models

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
    ) -> tuple[str, KeyRecord]:
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
        )
        with self._engine.begin() as connection:
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
