"""Warning broadcasts: the broadcasts table; outbox rows name the broadcast they deliver and whether quiet hours
hold them back; rate_buckets, a send rate shared by every process; cadres who relay warnings into village groups,
and their relays.

Revision ID: 0016
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("template", sa.String(64), nullable=True),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("segment", sa.JSON(), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("send_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("drafted_by", sa.String(64), nullable=False),
        sa.Column("approved_by", sa.String(64), nullable=True),
        sa.Column("skipped", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "rate_buckets",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("next_slot", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "cadres",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("village", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("channel", "user_id", "village", name="uq_cadre"),
    )
    op.create_table(
        "relays",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("broadcast_id", sa.Integer(), sa.ForeignKey("broadcasts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("cadre_id", sa.Integer(), sa.ForeignKey("cadres.id", ondelete="CASCADE"), nullable=False),
        sa.Column("village", sa.String(64), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("relayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("broadcast_id", "cadre_id", name="uq_relay"),
    )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("broadcast_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("quiet", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_index("ix_outbox_broadcast_id", ["broadcast_id"])


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_broadcast_id")
        batch.drop_column("quiet")
        batch.drop_column("broadcast_id")
    op.drop_table("relays")
    op.drop_table("cadres")
    op.drop_table("rate_buckets")
    op.drop_table("broadcasts")
