"""Taking a quiz page's answer at the pace of a county's first hour (thousands of players at once).

On PostgreSQL an answer costs two statements straight to asyncpg, each atomic on its own (SQLAlchemy's ORM costs
several times the CPU of the statements themselves): one read of the campaign and the attempt (only for the player
who owns it), and one statement that moves the attempt's counter from the question answered and stores the answer,
both or neither. The counter's condition is what lets one of many concurrent answers count (`campaigns.answer`
takes the same care through the ORM). An attempt's last answer does all of its finishing in that same statement
(the attempt finished with its certificate when passed, and made the player's counting attempt when it is better,
as `campaigns.answer` does); the player's rank comes from this process's rank book (quizzes/ranks.py), not a
count of every player ahead. On SQLite everything goes through `campaigns.answer` in one transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.storage.database import Database
from bot.storage.models import QuizAttempt, QuizCampaign, utcnow
from quizzes import campaigns, ranks
from quizzes.campaigns import Answered, QuizError

# the questions are read in one pass over the drawn JSON (each -> on a json column parses all of it again: three
# of them cost PostgreSQL more than the rest of the statement)
_READ = """
    SELECT c.id, c.state, c.starts_at, c.ends_at, c.seconds_per_question, c.scoring, c.pass_mark, c.slug,
           a.id, a.answered, a.score, a.seconds, a.asked_at, a.finished_at, q.total, q.asked, q.next, a.player_id
    FROM quiz_attempts a
    JOIN quiz_campaigns c ON c.id = a.campaign_id
    JOIN quiz_players p ON p.id = a.player_id
    CROSS JOIN LATERAL (
        SELECT count(*) AS total, min(e.value::text) FILTER (WHERE e.n = a.answered + 1) AS asked,
               min(e.value::text) FILTER (WHERE e.n = a.answered + 2) AS next
        FROM json_array_elements(a.drawn -> 'questions') WITH ORDINALITY e(value, n)) q
    WHERE a.token = $1 AND c.slug = $2 AND p.key = $3"""
_WRITE = """
    WITH moved AS (
        UPDATE quiz_attempts SET answered = answered + 1, score = score + $3, seconds = seconds + $4, asked_at = $5
        WHERE id = $1 AND answered = $2
        RETURNING id)
    INSERT INTO quiz_answers (attempt_id, position, question_id, category, choice, correct, seconds, answered_at)
    SELECT id, $2, $6, $7, $8, $9, $4, $5 FROM moved"""
# the last answer: as _WRITE, and the attempt finished; it becomes the player's counting one when the campaign
# counts the last attempt ($11 false) or it is better (campaigns._keep_counting). Concurrent finishes of one
# player's attempts queue on the player's row, and PostgreSQL checks the condition again on the newer row. It
# tells (when it counted) the score and seconds as stored, whether it is the player's counting attempt now, and
# the player's counting result before.
_FINISH = """
    WITH before AS (
        SELECT best_score, best_seconds FROM quiz_players WHERE id = $12),
    moved AS (
        UPDATE quiz_attempts SET answered = answered + 1, score = score + $3, seconds = seconds + $4, asked_at = $5,
                                 finished_at = $5, certificate = $10
        WHERE id = $1 AND answered = $2
        RETURNING id, player_id, score, seconds),
    stored AS (
        INSERT INTO quiz_answers (attempt_id, position, question_id, category, choice, correct, seconds, answered_at)
        SELECT id, $2, $6, $7, $8, $9, $4, $5 FROM moved),
    counting AS (
        UPDATE quiz_players p SET best_attempt_id = m.id, best_score = m.score, best_seconds = m.seconds
        FROM moved m
        WHERE p.id = m.player_id AND (NOT $11 OR p.best_score IS NULL OR p.best_score < m.score
                                      OR (p.best_score = m.score AND p.best_seconds > m.seconds))
        RETURNING p.id)
    SELECT m.score, m.seconds, EXISTS (SELECT FROM counting), b.best_score, b.best_seconds
    FROM moved m LEFT JOIN before b ON true"""


@dataclass(frozen=True)
class Taken:
    """An answer that counted; with the attempt's last one, whether the attempt passed and the player's rank
    among all players (1 = first)."""

    answered: Answered
    rank: int | None = None
    passed: bool = False


async def take(db: Database, book: ranks.Ranks, slug: str, token: str, key: str, question_id: str, choice: int,
               now: datetime | None = None) -> Taken:
    """Take a player's answer (QuizError when it cannot count); `book` tells the rank on PostgreSQL."""
    now = now or utcnow()
    if db.is_sqlite:
        async with db.transaction() as session:
            campaign, attempt = await campaigns.answering(session, slug, token, key)
            result = await campaigns.answer(session, campaign, attempt, question_id, choice, now=now)
            if result.next is not None:
                return Taken(result)
            return Taken(result, await campaigns.rank_of(session, campaign, attempt),
                         campaigns.passed(campaign, attempt))
    if not campaigns.storable(token, campaigns.TOKEN_MAX) or not campaigns.storable(slug, campaigns.SLUG_MAX):
        raise _not_found()
    async with db.driver() as driver:
        row = await driver.fetchrow(_READ, token, slug, key)
        if row is None:
            raise _not_found()
        campaign, attempt = _campaign_of(row), _attempt_of(row)
        judged = campaigns.judge(campaign, attempt, question_id, choice, now)
        q = judged.question
        values = (attempt.id, judged.position, int(judged.correct), judged.seconds, now, q["id"], q["category"],
                  judged.choice, judged.correct)
        result = campaigns.moved_on(campaign, attempt, judged, now)
        if not judged.last:
            if await driver.execute(_WRITE, *values) != "INSERT 0 1":
                raise _answered()
            return Taken(result)
        passed = campaigns.passed(campaign, attempt)
        attempt.certificate = campaigns.certificate_code() if passed else None
        finished = await driver.fetchrow(_FINISH, *values, attempt.certificate, campaign.scoring == "best",
                                         attempt.player_id)
        if finished is None:
            raise _answered()
        score, seconds, counting, best_score, best_seconds = finished
        before = ranks.key(best_score, best_seconds) if best_score is not None else None
        mine = ranks.key(score, seconds)
        if counting:
            book.moved(campaign.id, attempt.player_id, before, mine)
        elif before is not None:  # a better attempt counts (None: one finished at the same moment, unread)
            mine = before
        return Taken(result, await book.rank(driver, campaign.id, mine), passed)


def _not_found() -> QuizError:
    return QuizError("not-found", "no such attempt")


def _answered() -> QuizError:
    return QuizError("answered", "this question was answered already")


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
    return QuizAttempt(id=row[8], campaign_id=row[0], player_id=row[17], drawn={"questions": questions},
                       answered=row[9], score=row[10], seconds=row[11], asked_at=row[12], finished_at=row[13])

