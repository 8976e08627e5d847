"""Figures of a campaign for staff charts, beside `campaigns.stats`: participation by township (its villages and
schools summed) and how the counting scores are spread."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import RegionSettings
from bot.storage.models import QuizAnswer, QuizCampaign
from quizzes import campaigns


def by_township(region: RegionSettings, campaign: QuizCampaign, standings: list[dict[str, Any]],
                scope: list[str] | None = None) -> list[dict[str, Any]]:
    """Participants, population and rate per township, from the leaderboard's regions (`scope`: township codes to
    keep, None for all)."""
    counts = {r["code"]: r["participants"] for r in standings}
    totals: dict[str, list[int]] = {}
    for place in campaigns.regions(region, campaign):
        entry = totals.setdefault(place.township, [0, 0])
        entry[0] += counts.get(place.code, 0)
        entry[1] += place.population
    names = {t.code: t.name for t in region.townships}
    return [{"code": code, "name": names.get(code, code), "participants": n, "population": population,
             "rate": round(n / population, 4) if population else None}
            for code, (n, population) in totals.items() if scope is None or code in scope]


async def score_spread(session: AsyncSession, campaign: QuizCampaign) -> dict[str, list[int]]:
    """How many players' counting attempts scored 0, 1, … up to the campaign's questions."""
    counting = campaigns.counting_attempts(campaign)
    rows = await session.execute(select(counting.c.score, func.count()).group_by(counting.c.score))
    found = dict(rows.all())
    top = max([campaign.questions, *found]) if found else campaign.questions
    return {"labels": [str(n) for n in range(top + 1)], "values": [found.get(n, 0) for n in range(top + 1)]}


async def weakest_questions(session: AsyncSession, limit: int = 20, least: int = 5) -> list[dict[str, Any]]:
    """Questions most often answered wrong over every campaign (answered at least `least` times): what editors
    should explain better."""
    rows = await session.execute(
        select(QuizAnswer.question_id, QuizAnswer.category, func.count(QuizAnswer.id),
               func.sum(case((QuizAnswer.correct, 1), else_=0)))
        .group_by(QuizAnswer.question_id, QuizAnswer.category).having(func.count(QuizAnswer.id) >= least))
    found = [{"id": qid, "category": category, "answered": n, "correct_rate": round((right or 0) / n, 4)}
             for qid, category, n, right in rows.all()]
    return sorted(found, key=lambda r: (r["correct_rate"], -r["answered"], r["id"]))[:limit]
