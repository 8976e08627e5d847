"""Quiz players keep their counting attempt (best or last) and its score and time, so standings and ranks are an
index scan instead of a pass over every attempt.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("quiz_players") as batch:
        batch.add_column(sa.Column("best_attempt_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("best_score", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("best_seconds", sa.Float(), nullable=True))
    op.create_index("ix_quiz_players_standing", "quiz_players", ["campaign_id", "best_score", "best_seconds"])
    # players of older versions: their counting attempt, picked as quizzes/campaigns.py picks it
    for scoring, order in (("best", "a.score DESC, a.seconds, a.id"), ("last", "a.finished_at DESC, a.id DESC")):
        op.execute(f"""
            UPDATE quiz_players SET best_attempt_id = (
                SELECT a.id FROM quiz_attempts a WHERE a.player_id = quiz_players.id AND a.finished_at IS NOT NULL
                ORDER BY {order} LIMIT 1)
            WHERE campaign_id IN (SELECT id FROM quiz_campaigns WHERE scoring = '{scoring}')""")
    op.execute("""
        UPDATE quiz_players SET
            best_score = (SELECT score FROM quiz_attempts WHERE id = quiz_players.best_attempt_id),
            best_seconds = (SELECT seconds FROM quiz_attempts WHERE id = quiz_players.best_attempt_id)
        WHERE best_attempt_id IS NOT NULL""")


def downgrade() -> None:
    op.drop_index("ix_quiz_players_standing", "quiz_players")
    with op.batch_alter_table("quiz_players") as batch:
        batch.drop_column("best_seconds")
        batch.drop_column("best_score")
        batch.drop_column("best_attempt_id")
