"""The schema, as SQLAlchemy Core tables. Alembic migrations in ``migrations/`` create it."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

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
    Column("team_id", String(32), nullable=True),
    Column("user_id", String(32), nullable=True),
    Column("rpm_limit", BigInteger, nullable=True),
    Column("tpm_limit", BigInteger, nullable=True),
    Column("key_alias", String(200), nullable=True),  # unique when set
    Column("blocked_at", DateTime(timezone=True), nullable=True),
    # A rotated key: the sha256 of the key it replaced, accepted until previous_expires_at.
    Column("previous_hash", String(64), nullable=True),
    Column("previous_expires_at", DateTime(timezone=True), nullable=True),
    Column("max_parallel_requests", BigInteger, nullable=True),
)
Index("ix_virtual_keys_created_at", virtual_keys.c.created_at)
Index("uq_virtual_keys_key_alias", virtual_keys.c.key_alias, unique=True)
Index("ix_virtual_keys_team_id", virtual_keys.c.team_id)

teams = Table(
    "teams",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("rpm_limit", BigInteger, nullable=True),
    Column("tpm_limit", BigInteger, nullable=True),
    Column("metadata", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("max_parallel_requests", BigInteger, nullable=True),
)

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("team_id", String(32), ForeignKey("teams.id"), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("rpm_limit", BigInteger, nullable=True),
    Column("tpm_limit", BigInteger, nullable=True),
)

budgets = Table(
    "budgets",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("scope", String(8), nullable=False),  # key | team | user
    Column("scope_id", String(32), nullable=False),
    Column("period", String(8), nullable=False),  # daily | weekly | monthly | total
    Column("max_nanos", BigInteger, nullable=False),  # hard limit, nano-dollars
    Column("soft_nanos", BigInteger, nullable=True),  # alert threshold, nano-dollars
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("scope", "scope_id", "period", name="uq_budgets_scope_period"),
)

# Request and token limits per minute of a project or a tag, set through the admin API; a row
# overrides the config's ``governance.projects`` / ``governance.tags`` entry of the same name.
scope_limits = Table(
    "scope_limits",
    metadata,
    Column("scope", String(8), primary_key=True),  # project | tag
    Column("scope_id", String(128), primary_key=True),
    Column("rpm_limit", BigInteger, nullable=True),
    Column("tpm_limit", BigInteger, nullable=True),
    Column("updated_by", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Once per budget, period and kind across every replica: the unique constraint decides which
# replica delivers (gateway/governance/alerts.py).
budget_alerts = Table(
    "budget_alerts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("budget_id", String(32), nullable=False),
    Column("scope", String(8), nullable=False),
    Column("scope_id", String(32), nullable=False),
    Column("period", String(8), nullable=False),
    Column("period_label", String(16), nullable=False),
    Column("kind", String(8), nullable=False),  # soft | hard
    Column("threshold_nanos", BigInteger, nullable=False),
    Column("spent_nanos", BigInteger, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("budget_id", "period_label", "kind", name="uq_budget_alerts_once"),
)
Index("ix_budget_alerts_at", budget_alerts.c.at)

admin_tokens = Table(
    "admin_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False),  # sha256 of the whole token
    Column("role", String(16), nullable=False),  # team_admin | viewer | metrics
    Column("team_id", String(32), ForeignKey("teams.id"), nullable=True),
    Column("name", String(200), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(128), nullable=False),
    Column("detail", Text, nullable=False),  # JSON object, never a key or token
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

spend = Table(
    "spend",
    metadata,
    Column("id", String(32), primary_key=True),  # the request's id: outbox replays are idempotent
    Column("at", DateTime(timezone=True), nullable=False),
    Column("day", String(10), nullable=False),  # YYYY-MM-DD (UTC), for reports by day
    Column("key_id", String(32), nullable=False),
    Column("team_id", String(32), nullable=True),
    Column("user_id", String(32), nullable=True),
    Column("project", String(128), nullable=True),
    Column("tags", Text, nullable=False),  # JSON list
    Column("model", String(200), nullable=False),
    Column("deployment", String(200), nullable=True),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("cost_nanos", BigInteger, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("status", String(64), nullable=False),
    Column("guardrails", String(512), nullable=False, server_default=""),
    Column("cache_write_tokens", BigInteger, nullable=False, server_default="0"),
)
Index("ix_spend_at", spend.c.at)
Index("ix_spend_key_at", spend.c.key_id, spend.c.at)
Index("ix_spend_team_at", spend.c.team_id, spend.c.at)
Index("ix_spend_user_at", spend.c.user_id, spend.c.at)

# The MCP gateway (gateway.mcp): the tools an operator approved, each pinned by the SHA-256 of
# its description and input schema, and who may call which server's tools.
mcp_approvals = Table(
    "mcp_approvals",
    metadata,
    Column("server", String(48), primary_key=True),
    Column("tool", String(128), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("approved_by", String(64), nullable=False),
    Column("approved_at", DateTime(timezone=True), nullable=False),
)

mcp_grants = Table(
    "mcp_grants",
    metadata,
    Column("principal", String(48), primary_key=True),  # key:<id> or team:<id>
    Column("pattern", String(180), primary_key=True),  # <server>.<tool> or <server>.*
    Column("granted_by", String(64), nullable=False),
    Column("granted_at", DateTime(timezone=True), nullable=False),
)

# The sinks this deployment delivers to (config ``sinks``), and what each has still to take:
# one row per event per sink, deleted once the sink acknowledged it. A trigger (migration 0007)
# queues every new spend row for every registered sink in the row's own transaction.
sinks = Table("sinks", metadata, Column("name", String(64), primary_key=True))

sink_queue = Table(
    "sink_queue",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("sink", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),  # a spend event's is the spend row's id
    Column("type", String(32), nullable=False),  # spend | budget_alert | ...
    Column("body", Text, nullable=True),  # JSON; none for spend (read from the spend row)
    Column("lease_until", Float, nullable=True),  # unix time; a replica is delivering it
    Column("lease_owner", String(32), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    UniqueConstraint("sink", "event_id", name="uq_sink_queue_event"),
    sqlite_autoincrement=True,  # a seq is never reused: S3 object names are made of them
)
Index("ix_sink_queue_sink_seq", sink_queue.c.sink, sink_queue.c.seq)

# The dashboard's signed-in sessions (gateway/api/ui/, migration 0012). The cookie holds a random
# secret; a row holds only its SHA-256, so a database reader cannot sign in as anyone. Every
# replica reads the same rows, and logout (or revoking the admin token) ends a session on all.
ui_sessions = Table(
    "ui_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),  # sha256 of the cookie's secret
    Column("actor", String(64), nullable=False),  # the audit log's name for who signed in
    Column("role", String(16), nullable=False),  # admin | team_admin | viewer
    Column("team_id", String(32), nullable=True),
    Column("csrf", String(64), nullable=False),  # the form token (useless without the cookie)
    Column("token_id", String(32), nullable=True),  # the admin token it was made from, if any
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),  # for the idle expiry
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# OpenID Connect sign-ins under way: the state (hashed), the PKCE verifier and the nonce, between
# the redirect to the provider and its callback (which may reach another replica).
ui_logins = Table(
    "ui_logins",
    metadata,
    Column("state_hash", String(64), primary_key=True),
    Column("verifier", String(128), nullable=False),
    Column("nonce", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
