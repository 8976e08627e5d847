"""Leases: one process leads the jobs that must run once (opening and closing quiz campaigns on time); a campaign's
state gains "scheduled" (opens by itself at its start).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("quiz_campaigns") as batch:
        batch.alter_column("state", type_=sa.String(16), existing_type=sa.String(8), existing_nullable=False)


def downgrade() -> None:
    op.execute("UPDATE quiz_campaigns SET state = 'draft' WHERE state = 'scheduled'")
    with op.batch_alter_table("quiz_campaigns") as batch:
        batch.alter_column("state", type_=sa.String(8), existing_type=sa.String(16), existing_nullable=False)
    op.drop_table("leases")
