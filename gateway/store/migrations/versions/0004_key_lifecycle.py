"""key lifecycle: alias, block, rotation with a grace period; parallel and per-user limits

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("virtual_keys") as batch:
        batch.add_column(sa.Column("key_alias", sa.String(200), nullable=True))
        batch.add_column(sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("previous_hash", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("previous_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("max_parallel_requests", sa.BigInteger, nullable=True))
        batch.create_index("uq_virtual_keys_key_alias", ["key_alias"], unique=True)
    with op.batch_alter_table("teams") as batch:
        batch.add_column(sa.Column("max_parallel_requests", sa.BigInteger, nullable=True))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("rpm_limit", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("tpm_limit", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("tpm_limit")
        batch.drop_column("rpm_limit")
    with op.batch_alter_table("teams") as batch:
        batch.drop_column("max_parallel_requests")
    with op.batch_alter_table("virtual_keys") as batch:
        batch.drop_column("max_parallel_requests")
        batch.drop_index("uq_virtual_keys_key_alias")
        batch.drop_column("previous_expires_at")
        batch.drop_column("previous_hash")
        batch.drop_column("blocked_at")
        batch.drop_column("key_alias")
