"""Evidence kept by us: the sealed bytes of a tip's photos and files, their content type and when they were fetched.

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
    with op.batch_alter_table("tip_evidence") as batch:
        batch.add_column(sa.Column("content_sealed", sa.Text(), nullable=True))
        batch.add_column(sa.Column("content_type", sa.String(64), nullable=True))
        batch.add_column(sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tip_evidence") as batch:
        batch.drop_column("fetched_at")
        batch.drop_column("content_type")
        batch.drop_column("content_sealed")
