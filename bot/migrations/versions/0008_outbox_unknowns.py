"""Outbox: how many sends of a message had an unknown outcome (no answer, or a worker that died mid-send), so that
such a message is tried once more and then given up instead of being repeated.

Revision ID: 0008
Revises: 0006 (re-chained to 0007 when merged)
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("unknowns", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("unknowns")
