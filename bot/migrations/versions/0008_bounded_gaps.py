"""Unanswered questions: one row per normalised question with a count, first and last seen (instead of a row per
message), so a flood of questions costs a counter, not a table that grows without bound.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None
CAP = 200


def upgrade() -> None:
    op.create_table(
        "question_gaps",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("text", sa.String(CAP), nullable=False, unique=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_question_gaps_last_seen", "question_gaps", ["last_seen"])
    op.execute(f"INSERT INTO question_gaps (text, count, first_seen, last_seen)"
               f" SELECT substr(text, 1, {CAP}), count(*), min(created_at), max(created_at) FROM unmatched_questions"
               f" GROUP BY substr(text, 1, {CAP})")
    op.drop_index("ix_unmatched_text", "unmatched_questions")
    op.drop_table("unmatched_questions")


def downgrade() -> None:
    op.create_table(
        "unmatched_questions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_unmatched_text", "unmatched_questions", ["text"])
    op.execute("INSERT INTO unmatched_questions (text, channel, created_at)"
               " SELECT text, 'unknown', last_seen FROM question_gaps")
    op.drop_index("ix_question_gaps_last_seen", "question_gaps")
    op.drop_table("question_gaps")
