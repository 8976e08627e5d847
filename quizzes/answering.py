"""Taking a quiz page's answer at the pace of a county's first hour (thousands of players at once).

On PostgreSQL an answer that does not finish its attempt costs two statements straight to asyncpg, each atomic on
its own: one read of the campaign and attempt (only for the player who owns it), and one statement that moves the
attempt's counter from the question answered and stores the answer, both or neither. The counter's condition is
what lets one of many concurrent answers count (`campaigns.answer` takes the same care through the ORM). An
attempt's last answer, and everything on SQLite, goes through `campaigns.answer` in a transaction, since finishing
also updates the player's standing and may give a certificate.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.database import Database
from bot.storage.models import QuizAttempt, QuizCampaign, utcnow
from quizzes import campaigns
from quizzes.campaigns import Answered, QuizError

_READ = """
    SELECT c.id, c.state, c.starts_at, c.ends_at, c.seconds_per_question, c.scoring, c.pass_mark, c.slug,
           a.id, a.answered, a.score, a.seconds, a.asked_at, a.finished_at,
           json_array_length(a.drawn -> 'questions'), a.drawn -> 'questions' -> a.answered,
           a.drawn -> 'questions' -> (a.answered + 1)
    FROM quiz_attempts a
    JOIN quiz_campaigns c ON c.id = a.campaign_id
    JOIN quiz_players p ON p.id = a.player_id
    WHERE a.token = $1 AND c.slug = $2 AND p.key = $3"""
_WRITE = """
    WITH moved AS (
        UPDATE quiz_attempts SET answered = answered + 1, score = score + $3, seconds = seconds + $4, asked_at = $5
        WHERE id = $1 AND answered = $2
        RETURNING id)
    INSERT INTO quiz_answers (attempt_id, position, question_id, category, choice, correct, seconds, answered_at)
    SELECT id, $2, $6, $7, $8, $9, $4, $5 FROM moved"""
Finisher = Callable[[AsyncSession, QuizCampaign, QuizAttempt, Answered], Awaitable[dict[str, Any]]]


async def take(db: Database, slug: str, token: str, key: str, question_id: str, choice: int,
               finish: Finisher, now: datetime | None = None) -> tuple[Answered, dict[str, Any]]:
    """Take a player's answer (QuizError when it cannot count); with the attempt's last answer, also what
    `finish` adds (the result, the rank), read in the same transaction."""
    now = now or utcnow()
    if not db.is_sqlite:
        async with db.driver() as driver:
            row = await driver.fetchrow(_READ, token, slug, key)
            if row is None:
                raise QuizError("not-found", "no such attempt")
            campaign, attempt = _campaign_of(row), _attempt_of(row)
            judged = campaigns.judge(campaign, attempt, question_id, choice, now)
            if not judged.last:
                q = judged.question
                stored = await driver.execute(_WRITE, attempt.id, judged.position, int(judged.correct),
                                              judged.seconds, now, q["id"], q["category"], judged.choice,
                                              judged.correct)
                if stored != "INSERT 0 1":
                    raise QuizError("answered", "this question was answered already")
                return campaigns.moved_on(campaign, attempt, judged, now), {}
    async with db.transaction() as session:
        campaign, attempt = await campaigns.answering(session, slug, token, key)
        result = await campaigns.answer(session, campaign, attempt, question_id, choice, now=now)
        return result, (await finish(session, campaign, result.attempt, result) if result.next is None else {})


def _campaign_of(row: Any) -> QuizCampaign:
    return QuizCampaign(id=row[0], state=row[1], starts_at=row[2], ends_at=row[3], seconds_per_question=row[4],
                        scoring=row[5], pass_mark=row[6], slug=row[7])


def _attempt_of(row: Any) -> QuizAttempt:
    """The attempt with only the question being answered and the next one read (a page of text each); the
    others stay None: nothing on this path looks at them."""
    questions: list[Any] = [None] * (row[14] or 0)
    for position, question in ((row[9], row[15]), (row[9] + 1, row[16])):
        if question is not None and position < len(questions):
            questions[position] = json.loads(question) if isinstance(question, str) else question
    return QuizAttempt(id=row[8], campaign_id=row[0], drawn={"questions": questions}, answered=row[9],
                       score=row[10], seconds=row[11], asked_at=row[12], finished_at=row[13])
