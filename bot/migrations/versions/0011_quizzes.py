"""Quizzes: campaigns, players (keyed fingerprints, never platform ids), attempts with their drawn questions, and
answers stored once each.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "quiz_campaigns",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("questions", sa.Integer(), nullable=False),
        sa.Column("seconds_per_question", sa.Integer(), nullable=True),
        sa.Column("attempts_per_day", sa.Integer(), nullable=False),
        sa.Column("scoring", sa.String(8), nullable=False),
        sa.Column("pass_mark", sa.Integer(), nullable=False),
        sa.Column("starts_at", WHEN, nullable=True),
        sa.Column("ends_at", WHEN, nullable=True),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("townships", sa.JSON(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_table(
        "quiz_players",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("quiz_campaigns.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(32), nullable=True),
        sa.Column("region", sa.String(64), nullable=True),
        sa.Column("on_paper", sa.Boolean(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.UniqueConstraint("campaign_id", "key", name="uq_quiz_player"),
    )
    op.create_index("ix_quiz_players_region", "quiz_players", ["campaign_id", "region"])
    op.create_table(
        "quiz_attempts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token", sa.String(32), nullable=False, unique=True),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("quiz_campaigns.id", ondelete="CASCADE"), nullable=False),
        sa.Column("player_id", sa.Integer(), sa.ForeignKey("quiz_players.id", ondelete="CASCADE"), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("drawn", sa.JSON(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("asked_at", WHEN, nullable=False),
        sa.Column("finished_at", WHEN, nullable=True),
        sa.Column("certificate", sa.String(16), nullable=True, unique=True),
    )
    op.create_index("ix_quiz_attempts_player", "quiz_attempts", ["player_id", "day"])
    op.create_index("ix_quiz_attempts_campaign", "quiz_attempts", ["campaign_id", "finished_at"])
    op.create_table(
        "quiz_answers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("attempt_id", sa.Integer(), sa.ForeignKey("quiz_attempts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.String(32), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("choice", sa.Integer(), nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("answered_at", WHEN, nullable=False),
        sa.UniqueConstraint("attempt_id", "position", name="uq_quiz_answer"),
    )


def downgrade() -> None:
    op.drop_table("quiz_answers")
    op.drop_index("ix_quiz_attempts_campaign", "quiz_attempts")
    op.drop_index("ix_quiz_attempts_player", "quiz_attempts")
    op.drop_table("quiz_attempts")
    op.drop_index("ix_quiz_players_region", "quiz_players")
    op.drop_table("quiz_players")
    op.drop_table("quiz_campaigns")
