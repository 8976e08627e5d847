"""Periodic jobs (APScheduler 3, in the serving process): module-level async functions, each safe to run in
several processes at once (they only queue outbox rows with dedup keys), so no leader is needed yet."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.services import Services
from bot.tips.drafts import drop_expired, remind_abandoned

DRAFT_SCAN_MINUTES = 5


def start_scheduler(services: Services) -> AsyncIOScheduler:
    """Start the jobs on the running event loop; `shutdown(wait=False)` at exit."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(remind_abandoned, "interval", minutes=DRAFT_SCAN_MINUTES, args=[services],
                      id="remind-abandoned-drafts", coalesce=True, max_instances=1)
    scheduler.add_job(drop_expired, "interval", minutes=DRAFT_SCAN_MINUTES, args=[services],
                      id="drop-expired-drafts", coalesce=True, max_instances=1)
    scheduler.start()
    return scheduler
