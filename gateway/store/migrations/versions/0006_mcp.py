"""mcp: approved tools (pinned digests) and allowlists

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mcp_approvals",
        sa.Column("server", sa.String(48), primary_key=True),
        sa.Column("tool", sa.String(128), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("approved_by", sa.String(64), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "mcp_grants",
        sa.Column("principal", sa.String(48), primary_key=True),
        sa.Column("pattern", sa.String(180), primary_key=True),
        sa.Column("granted_by", sa.String(64), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mcp_grants")
    op.drop_table("mcp_approvals")
