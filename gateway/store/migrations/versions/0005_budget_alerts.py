"""budget alerts: once per budget, period and kind across every replica

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_alerts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("budget_id", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("scope_id", sa.String(32), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("period_label", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("threshold_nanos", sa.BigInteger, nullable=False),
        sa.Column("spent_nanos", sa.BigInteger, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("budget_id", "period_label", "kind", name="uq_budget_alerts_once"),
    )
    op.create_index("ix_budget_alerts_at", "budget_alerts", ["at"])


def downgrade() -> None:
    op.drop_index("ix_budget_alerts_at", "budget_alerts")
    op.drop_table("budget_alerts")
