"""The staff console: staff accounts (hashed passwords, role, township scope, lock-out) and their sessions; a
detail on audit entries (a reveal's reason, an export's filter); editors' marks on unanswered questions.

Revision ID: 0018
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_accounts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(48), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("townships", sa.JSON(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "staff_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("staff_accounts.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("detail", sa.Text(), nullable=True))
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    with op.batch_alter_table("question_gaps") as batch:
        batch.add_column(sa.Column("mark", sa.String(16), nullable=True))
    op.create_index("ix_tips_created_at", "tips", ["created_at"])
    op.create_index("ix_tips_township", "tips", ["township", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_tips_township", "tips")
    op.drop_index("ix_tips_created_at", "tips")
    with op.batch_alter_table("question_gaps") as batch:
        batch.drop_column("mark")
    op.drop_index("ix_audit_log_at", "audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("detail")
    op.drop_table("staff_sessions")
    op.drop_table("staff_accounts")
