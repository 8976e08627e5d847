"""Periodic jobs (APScheduler 3, in the serving process).

Most jobs are safe to run in several processes at once (they queue outbox rows with dedup keys, or delete what is
past its time) and run everywhere. Jobs that must happen once (campaigns opening and closing, warnings going out at
their time) run only in the process holding the scheduler lease (bot/leader.py); the lease is renewed at a third of
its length, so a killed leader is replaced within `scheduler.lease_seconds`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.broadcasts import lifecycle as broadcasts
from bot.leader import Lease
from bot.services import Services, forget_gaps
from bot.storage import conversations, inbox
from bot.storage.models import utcnow
from bot.tips.drafts import drop_expired, remind_abandoned
from quizzes.schedule import open_and_close_due

if TYPE_CHECKING:
    from handlers.group_quiz import GroupHost

log = logging.getLogger(__name__)
DRAFT_SCAN_MINUTES = 5
PRUNE_MINUTES = 60
Job = Callable[..., Awaitable[Any]]


async def forget_old_records(services: Services) -> int:
    """Keep storage bounded: the exactly-once records of messages no platform will deliver again, conversations
    of users gone for `chat.retention_days`, questions nobody asked for `search.gaps_retention_days`."""
    settings = services.settings
    async with services.db.transaction() as session:
        return (await inbox.prune(session)
                + await conversations.forget_idle(session, settings.chat.retention_days)
                + await forget_gaps(session, settings.search.gaps_retention_days))


async def advance_broadcasts(services: Services) -> int:
    """Send warnings whose time has come, tidy cancelled ones, mark finished ones done (bot/broadcasts/)."""
    async with services.db.transaction() as session:
        return await broadcasts.advance(session, services.settings, utcnow())


@dataclass
class Jobs:
    """The running scheduler and this process's lease; `stop()` at exit gives the lease up."""

    scheduler: AsyncIOScheduler
    lease: Lease

    async def stop(self) -> None:
        self.scheduler.shutdown(wait=False)
        try:
            await self.lease.release()
        except Exception as exc:  # the database may be gone at exit; the lease then simply runs out
            log.warning("leader: could not give the lease up (%s)", exc.__class__.__name__)


def led(lease: Lease, job: Job) -> Job:
    """The job, run only while this process holds the lease."""

    async def run(*args: Any) -> Any:
        if await lease.hold():
            return await job(*args)
        return None

    run.__name__ = f"led_{job.__name__}"
    return run


async def keep_lease(lease: Lease) -> None:
    try:
        await lease.hold()
    except Exception as exc:  # a database hiccup: try again at the next beat; the lease may run out meanwhile
        log.warning("leader: could not renew the lease (%s)", exc.__class__.__name__)


def start_scheduler(services: Services, groups: Sequence[GroupHost] = ()) -> Jobs:
    """Start the jobs on the running event loop; `groups`: the channels' hosts of group quiz rounds."""
    settings = services.settings.scheduler
    lease = Lease(services.db, "scheduler", settings.lease_seconds)
    scheduler = AsyncIOScheduler(timezone="UTC")
    once = {"coalesce": True, "max_instances": 1}
    scheduler.add_job(keep_lease, "interval", seconds=settings.lease_seconds / 3, args=[lease], id="keep-lease",
                      next_run_time=utcnow(), **once)
    scheduler.add_job(remind_abandoned, "interval", minutes=DRAFT_SCAN_MINUTES, args=[services],
                      id="remind-abandoned-drafts", **once)
    scheduler.add_job(drop_expired, "interval", minutes=DRAFT_SCAN_MINUTES, args=[services],
                      id="drop-expired-drafts", **once)
    scheduler.add_job(forget_old_records, "interval", minutes=PRUNE_MINUTES, args=[services],
                      id="forget-old-records", **once)
    # leader only
    scheduler.add_job(led(lease, open_and_close_due), "interval", seconds=settings.campaigns_every_seconds,
                      args=[services], id="open-and-close-campaigns", next_run_time=utcnow(), **once)
    quiz = services.settings.group_quiz
    for host in groups:  # the next poll of each group's round when it is due; the daily rounds
        scheduler.add_job(led(lease, host.step_due), "interval", seconds=quiz.step_every_seconds,
                          id=f"group-quiz-steps-{host.talk.channel}", next_run_time=utcnow(), **once)
        scheduler.add_job(led(lease, host.schedule_due), "interval", seconds=quiz.schedule_every_seconds,
                          id=f"group-quiz-daily-{host.talk.channel}", **once)
    scheduler.add_job(led(lease, advance_broadcasts), "interval", seconds=services.settings.broadcasts.every_seconds,
                      args=[services], id="advance-broadcasts", next_run_time=utcnow(), **once)
    scheduler.start()
    return Jobs(scheduler, lease)
