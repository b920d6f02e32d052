"""sink queue: every new spend row is queued for each registered sink, in its transaction

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# A trigger, so every path that inserts spend rows (the group-committed batch, the COPY of a
# large one, the outbox file's replay) queues them in the same transaction. A replayed row that
# is already there is not inserted, so it is not queued again.
SQLITE_TRIGGER = """
CREATE TRIGGER spend_to_sinks AFTER INSERT ON spend
BEGIN
    INSERT OR IGNORE INTO sink_queue (sink, event_id, type) SELECT name, NEW.id, 'spend' FROM sinks;
END
"""
POSTGRES_FUNCTION = """
CREATE FUNCTION sealgate_spend_to_sinks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sink_queue (sink, event_id, type)
    SELECT s.name, i.id, 'spend' FROM inserted i CROSS JOIN sinks s
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$
"""
POSTGRES_TRIGGER = """
CREATE TRIGGER spend_to_sinks AFTER INSERT ON spend
REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
EXECUTE FUNCTION sealgate_spend_to_sinks()
"""


def upgrade() -> None:
    op.create_table("sinks", sa.Column("name", sa.String(64), primary_key=True))
    op.create_table(
        "sink_queue",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("sink", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("body", sa.Text, nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("lease_owner", sa.String(32), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.UniqueConstraint("sink", "event_id", name="uq_sink_queue_event"),
        # Never reuse a deleted row's seq (SQLite would, without AUTOINCREMENT): S3 object names
        # are made of them.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_sink_queue_sink_seq", "sink_queue", ["sink", "seq"])
    if op.get_bind().dialect.name == "sqlite":
        op.execute(SQLITE_TRIGGER)
    else:
        op.execute(POSTGRES_FUNCTION)
        op.execute(POSTGRES_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER spend_to_sinks")
    else:
        op.execute("DROP TRIGGER spend_to_sinks ON spend")
        op.execute("DROP FUNCTION sealgate_spend_to_sinks()")
    op.drop_table("sink_queue")
    op.drop_table("sinks")
