"""Group quizzes: rounds of native quiz polls in group chats (questions frozen with the round), the poll → question
map, answers stored once per poll and player (a keyed fingerprint, a masked name), and each group's settings.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None
WHEN = sa.DateTime(timezone=True)
RUNNING = sa.text("state = 'running'")


def upgrade() -> None:
    op.create_table(
        "group_quiz_rounds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("chat_id", sa.String(128), nullable=False),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("quiz_campaigns.id", ondelete="SET NULL"), nullable=True),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("drawn", sa.JSON(), nullable=False),
        sa.Column("open_seconds", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("due_at", WHEN, nullable=False),
        sa.Column("claimed_until", WHEN, nullable=True),
        sa.Column("unknowns", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("finished_at", WHEN, nullable=True),
    )
    op.create_index("uq_group_quiz_running", "group_quiz_rounds", ["channel", "chat_id"], unique=True,
                    sqlite_where=RUNNING, postgresql_where=RUNNING)
    op.create_index("ix_group_quiz_rounds_due", "group_quiz_rounds", ["state", "due_at"])
    op.create_table(
        "group_quiz_polls",
        sa.Column("poll_id", sa.String(64), primary_key=True),
        sa.Column("round_id", sa.Integer(), sa.ForeignKey("group_quiz_rounds.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("correct", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("posted_at", WHEN, nullable=False),
        sa.Column("closes_at", WHEN, nullable=False),
    )
    op.create_index("ix_group_quiz_polls_round_id", "group_quiz_polls", ["round_id"])
    op.create_table(
        "group_quiz_answers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("poll_id", sa.String(64), sa.ForeignKey("group_quiz_polls.poll_id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("round_id", sa.Integer(), sa.ForeignKey("group_quiz_rounds.id", ondelete="CASCADE"), nullable=False),
        sa.Column("player", sa.String(64), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("choice", sa.Integer(), nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("answered_at", WHEN, nullable=False),
        sa.UniqueConstraint("poll_id", "player", name="uq_group_quiz_answer"),
    )
    op.create_index("ix_group_quiz_answers_round", "group_quiz_answers", ["round_id"])
    op.create_table(
        "group_quiz_groups",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("chat_id", sa.String(128), nullable=False),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("scheduled", sa.Boolean(), nullable=False),
        sa.Column("last_day", sa.String(10), nullable=True),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.UniqueConstraint("channel", "chat_id", name="uq_group_quiz_group"),
    )


def downgrade() -> None:
    op.drop_table("group_quiz_groups")
    op.drop_index("ix_group_quiz_answers_round", "group_quiz_answers")
    op.drop_table("group_quiz_answers")
    op.drop_index("ix_group_quiz_polls_round_id", "group_quiz_polls")
    op.drop_table("group_quiz_polls")
    op.drop_index("ix_group_quiz_rounds_due", "group_quiz_rounds")
    op.drop_index("uq_group_quiz_running", "group_quiz_rounds")
    op.drop_table("group_quiz_rounds")
