"""Campaigns open and close on time.

Whether a campaign takes answers is decided from its times at every request (`campaigns.is_open`), so it opens and
closes to the second; this job, run by the leading process only (bot/leader.py), writes the change down: the state
moves scheduled → open at the start and → closed at the end, once each, with an entry in the audit log. Each move
is a compare-and-set on the state, so even two processes running it at once (a lease lost mid-run) move a campaign
once.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update

from bot.services import Services
from bot.storage.models import AuditEntry, QuizCampaign, utcnow
from bot.tips.ledger import as_utc
from quizzes.campaigns import TAKING

log = logging.getLogger(__name__)
ACTOR = "scheduler"


def due_state(campaign: QuizCampaign, now: datetime) -> str | None:
    """The state a campaign should be in by now, when that is not its state."""
    ended = campaign.ends_at is not None and as_utc(campaign.ends_at) <= now
    if campaign.state in TAKING and ended:
        return "closed"
    if campaign.state == "scheduled" and (campaign.starts_at is None or as_utc(campaign.starts_at) <= now):
        return "open"
    return None


async def open_and_close_due(services: Services, now: datetime | None = None) -> list[tuple[str, str]]:
    """Move every campaign whose start or end has come; the (slug, new state) pairs this call moved."""
    now = now or utcnow()
    moved: list[tuple[str, str]] = []
    async with services.db.transaction() as session:
        campaigns = (await session.scalars(select(QuizCampaign).where(
            QuizCampaign.state.in_(TAKING)))).all()
        for campaign in campaigns:
            state = due_state(campaign, now)
            if state is None:
                continue
            done = await session.execute(update(QuizCampaign).where(
                QuizCampaign.id == campaign.id, QuizCampaign.state == campaign.state).values(state=state))
            if done.rowcount == 1:
                session.add(AuditEntry(actor=ACTOR, action=f"quiz-{state}", subject=campaign.slug))
                moved.append((campaign.slug, state))
    for slug, state in moved:
        log.info("quiz campaign %s is %s", slug, state)
    return moved
