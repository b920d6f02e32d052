"""Durable state: SQLite by default, PostgreSQL to scale out (SQLAlchemy Core + Alembic)."""
