"""key lifecycle: alias, block, rotation with a grace period

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
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
        batch.create_index("uq_virtual_keys_key_alias", ["key_alias"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("virtual_keys") as batch:
        batch.drop_index("uq_virtual_keys_key_alias")
        batch.drop_column("previous_expires_at")
        batch.drop_column("previous_hash")
        batch.drop_column("blocked_at")
        batch.drop_column("key_alias")
