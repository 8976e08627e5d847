"""Periodic jobs (APScheduler 3, in the serving process): module-level async functions, each safe to run in
several processes at once (they only queue outbox rows with dedup keys), so no leader is needed yet."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.services import Services
from bot.storage import inbox
from bot.tips.drafts import drop_expired, remind_abandoned

DRAFT_SCAN_MINUTES = 5
PRUNE_MINUTES = 60


async def forget_old_messages(services: Services) -> int:
    """Drop the exactly-once records of messages no platform will deliver again (bot/storage/inbox.py)."""
    async with services.db.transaction() as session:
        return await inbox.prune(session)


def start_scheduler(services: Services) -> AsyncIOScheduler:
    """Start the jobs on the running event loop; `shutdown(wait=False)` at exit."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(remind_abandoned, "interval", minutes=DRAFT_SCAN_MINUTES, args=[services],
                      id="remind-abandoned-drafts", coalesce=True, max_instances=1)
    scheduler.add_job(drop_expired, "interval", minutes=DRAFT_SCAN_MINUTES, args=[services],
                      id="drop-expired-drafts", coalesce=True, max_instances=1)
    scheduler.add_job(forget_old_messages, "interval", minutes=PRUNE_MINUTES, args=[services],
                      id="forget-old-messages", coalesce=True, max_instances=1)
    scheduler.start()
    return scheduler
