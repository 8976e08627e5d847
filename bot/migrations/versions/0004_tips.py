"""Tips: the ledger, its history, evidence, the audit log, receipt counters, the outbox; notices on conversations.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NOW = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("notice", sa.Text(), nullable=True))
    op.create_table(
        "tips",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("receipt", sa.String(16), nullable=False, unique=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("reporter", sa.String(64), nullable=False),
        sa.Column("reporter_sealed", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("closing_reason", sa.String(16), nullable=True),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("township", sa.String(64), nullable=True),
        sa.Column("village", sa.String(64), nullable=True),
        sa.Column("place", sa.String(200), nullable=True),
        sa.Column("what", sa.Text(), nullable=False),
        sa.Column("who", sa.Text(), nullable=True),
        sa.Column("money", sa.String(200), nullable=True),
        sa.Column("happened", sa.String(200), nullable=True),
        sa.Column("anonymous", sa.Boolean(), nullable=False),
        sa.Column("name_sealed", sa.Text(), nullable=True),
        sa.Column("contact_sealed", sa.Text(), nullable=True),
        sa.Column("assignee", sa.String(64), nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", NOW, nullable=False),
        sa.Column("updated_at", NOW, nullable=False),
    )
    op.create_index("ix_tips_reporter", "tips", ["reporter", "created_at"])
    op.create_index("ix_tips_status", "tips", ["status"])
    op.create_index("ix_tips_fingerprint", "tips", ["fingerprint"])
    op.create_table(
        "tip_evidence",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tip_id", sa.Integer(), sa.ForeignKey("tips.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("created_at", NOW, nullable=False),
    )
    op.create_index("ix_tip_evidence_tip_id", "tip_evidence", ["tip_id"])
    op.create_table(
        "tip_changes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tip_id", sa.Integer(), sa.ForeignKey("tips.id", ondelete="CASCADE"), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("field", sa.String(32), nullable=False),
        sa.Column("old", sa.Text(), nullable=True),
        sa.Column("new", sa.Text(), nullable=True),
        sa.Column("at", NOW, nullable=False),
    )
    op.create_index("ix_tip_changes_tip_id", "tip_changes", ["tip_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("at", NOW, nullable=False),
    )
    op.create_table(
        "receipt_counters",
        sa.Column("year", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("last", sa.Integer(), nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("dedup", sa.String(128), nullable=False, unique=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", NOW, nullable=False),
        sa.Column("lease_until", NOW, nullable=True),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.Column("created_at", NOW, nullable=False),
        sa.Column("sent_at", NOW, nullable=True),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])


def downgrade() -> None:
    for table in ("outbox", "receipt_counters", "audit_log", "tip_changes", "tip_evidence", "tips"):
        op.drop_table(table)
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("notice")
