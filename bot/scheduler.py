"""Periodic jobs (APScheduler 3, in the serving process): module-level async functions, each safe to run in
several processes at once (they queue outbox rows with dedup keys, or delete what is past its time), so no leader
is needed yet."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.services import Services, forget_gaps
from bot.storage import conversations, inbox
from bot.tips.drafts import drop_expired, remind_abandoned

DRAFT_SCAN_MINUTES = 5
PRUNE_MINUTES = 60


async def forget_old_records(services: Services) -> int:
    """Keep storage bounded: the exactly-once records of messages no platform will deliver again, conversations
    of users gone for `chat.retention_days`, questions nobody asked for `search.gaps_retention_days`."""
    settings = services.settings
    async with services.db.transaction() as session:
        return (await inbox.prune(session)
                + await conversations.forget_idle(session, settings.chat.retention_days)
                + await forget_gaps(session, settings.search.gaps_retention_days))


def start_scheduler(services: Services) -> AsyncIOScheduler:
    """Start the jobs on the running event loop; `shutdown(wait=False)` at exit."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(remind_abandoned, "interval", minutes=DRAFT_SCAN_MINUTES, args=[services],
                      id="remind-abandoned-drafts", coalesce=True, max_instances=1)
    scheduler.add_job(drop_expired, "interval", minutes=DRAFT_SCAN_MINUTES, args=[services],
                      id="drop-expired-drafts", coalesce=True, max_instances=1)
    scheduler.add_job(forget_old_records, "interval", minutes=PRUNE_MINUTES, args=[services],
                      id="forget-old-records", coalesce=True, max_instances=1)
    scheduler.start()
    return scheduler
