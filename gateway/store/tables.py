"""The schema, as SQLAlchemy Core tables. Alembic migrations in ``migrations/`` create it."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, MetaData, String, Table, Text

metadata = MetaData()

virtual_keys = Table(
    "virtual_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    # sha256 of the whole key, hex. The key itself is never stored.
    Column("key_hash", String(64), nullable=False),
    Column("models", Text, nullable=False),  # JSON list
    Column("metadata", Text, nullable=False),  # JSON object
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)
Index("ix_virtual_keys_created_at", virtual_keys.c.created_at)
