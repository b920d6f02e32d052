"""cache writes: the prompt tokens a provider wrote to its prompt cache, on each spend row

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("spend") as batch:
        batch.add_column(
            sa.Column("cache_write_tokens", sa.BigInteger, nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("spend") as batch:
        batch.drop_column("cache_write_tokens")
