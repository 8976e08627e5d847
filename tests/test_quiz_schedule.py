"""Campaigns open and close on time, once, led by one process: the lease, the job, and two real `serve` processes."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import pytest
from sqlalchemy import select

from bot.leader import Lease
from bot.services import Services
from bot.storage.database import Database
from bot.storage.models import AuditEntry, QuizCampaign, utcnow
from bot.storage.models import Lease as LeaseRow
from quizzes import campaigns
from quizzes.campaigns import QuizError
from quizzes.schedule import open_and_close_due
from tests.support import Server
from tests.test_cli import run

T = TypeVar("T")


async def test_one_lease_holder_at_a_time_taken_over_when_it_runs_out_or_is_given_up(database: Database) -> None:
    now = utcnow()
    first, second = Lease(database, seconds=30, holder="a"), Lease(database, seconds=30, holder="b")
    assert await first.hold(now) and not await second.hold(now)
    assert await first.hold(now + timedelta(seconds=20))  # renewed: good until 50 s
    assert not await second.hold(now + timedelta(seconds=40))
    assert await second.hold(now + timedelta(seconds=51))  # the first went quiet (killed): taken over
    assert not await first.hold(now + timedelta(seconds=52)) and not first.leading
    await second.release()
    assert await first.hold(now + timedelta(seconds=53))  # given up at a clean stop: taken at the next try


async def test_many_processes_trying_at_the_same_moment_elect_exactly_one(database: Database) -> None:
    now = utcnow()
    # an empty table; a live lease (its holder keeps it); a lease that ran out
    for offset, winners in ((0, 1), (10, 0), (100, 1)):
        leases = [Lease(database, seconds=30, holder=f"p{offset}-{n}") for n in range(12)]
        won = await asyncio.gather(*(lease.hold(now + timedelta(seconds=offset)) for lease in leases))
        assert sum(won) == winners
    async with database.session() as session:
        assert len((await session.scalars(select(LeaseRow))).all()) == 1


async def _campaign(services: Services, slug: str, start_in: float | None, end_in: float | None,
                    open_now: bool = False) -> QuizCampaign:
    now = utcnow()
    async with services.db.transaction() as session:
        return await campaigns.create(
            session, slug=slug, name="测试活动", audience="elderly", open_now=open_now,
            starts_at=None if start_in is None else now + timedelta(seconds=start_in),
            ends_at=None if end_in is None else now + timedelta(seconds=end_in))


async def _states(services: Services) -> dict[str, str]:
    async with services.db.session() as session:
        return {c.slug: c.state for c in await session.scalars(select(QuizCampaign))}


async def _audit(services: Services) -> list[tuple[str, str, str]]:
    async with services.db.session() as session:
        rows = await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(r.actor, r.action, r.subject) for r in rows]


async def test_a_scheduled_campaign_takes_answers_from_its_start_and_the_job_writes_each_move_once(
        services: Services) -> None:
    made = await _campaign(services, "autumn", start_in=3600, end_in=7200)
    assert made.state == "scheduled" and not campaigns.is_open(made)
    start, end = utcnow() + timedelta(seconds=3600), utcnow() + timedelta(seconds=7200)
    assert await open_and_close_due(services, start - timedelta(seconds=5)) == []
    assert campaigns.is_open(made, start + timedelta(seconds=1))  # to the second, before the job has run
    assert await open_and_close_due(services, start + timedelta(seconds=1)) == [("autumn", "open")]
    assert await open_and_close_due(services, start + timedelta(seconds=2)) == []
    async with services.db.session() as session:
        assert await campaigns.open_for(session, "elderly", start + timedelta(seconds=2)) is not None
    # two processes running the job at once (a lease lost mid-run): the campaign closes once
    moved = await asyncio.gather(*(open_and_close_due(services, end + timedelta(seconds=1)) for _ in range(6)))
    assert sorted(m for ms in moved for m in ms) == [("autumn", "closed")]
    assert await _states(services) == {"autumn": "closed"}
    assert await _audit(services) == [("scheduler", "quiz-open", "autumn"), ("scheduler", "quiz-closed", "autumn")]


async def test_the_first_state_follows_the_times_and_opening_by_hand_moves_a_future_start(
        services: Services) -> None:
    await _campaign(services, "hand", start_in=None, end_in=None)
    await _campaign(services, "now", start_in=None, end_in=3600, open_now=True)
    await _campaign(services, "later", start_in=600, end_in=3600, open_now=True)  # --open with a start to come
    await _campaign(services, "past-start", start_in=-60, end_in=3600)
    assert await _states(services) == {"hand": "draft", "now": "open", "later": "scheduled",
                                       "past-start": "scheduled"}
    assert [m for m in await open_and_close_due(services)] == [("past-start", "open")]
    async with services.db.transaction() as session:
        later = await campaigns.named(session, "later")
        campaigns.open_by_hand(later)
        assert campaigns.is_open(later) and later.state == "open"
    await _campaign(services, "over", start_in=-7200, end_in=-3600)
    async with services.db.transaction() as session:
        with pytest.raises(QuizError, match="its end has passed"):
            campaigns.open_by_hand(await campaigns.named(session, "over"))
    assert ("over", "closed") in await open_and_close_due(services)


def _peek(url: str, look: Callable[[Services], Awaitable[T]]) -> T:
    """Read the database the serving processes share, from this (synchronous) test."""
    async def read() -> T:
        db = Database(url)
        try:
            return await look(Services(settings=None, db=db, kb=None, index=None, risk=None,  # type: ignore[arg-type]
                                       vault=None))  # type: ignore[arg-type]
        finally:
            await db.close()

    return asyncio.run(read())


async def _holder(services: Services) -> str:
    async with services.db.session() as session:
        row = await session.get(LeaseRow, "scheduler")
        return row.holder if row is not None else ""


def _wait_for(check: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def test_two_serving_processes_open_and_close_each_campaign_once_and_a_killed_leader_is_replaced(
        db_env: dict[str, str]) -> None:
    url = db_env["FANGFEI_DATABASE__URL"]
    env = {**db_env, "FANGFEI_SCHEDULER__LEASE_SECONDS": "3", "FANGFEI_SCHEDULER__CAMPAIGNS_EVERY_SECONDS": "0.3"}
    servers = [Server(env), Server(env)]
    for server in servers:
        server.start()
    try:
        def later(seconds: float) -> str:
            return (utcnow() + timedelta(seconds=seconds)).isoformat()

        # made in this process, not by the CLI: its start-up, slow on a loaded machine, must not eat the window
        _peek(url, lambda services: _campaign(services, "first", start_in=1.5, end_in=3.5))
        _wait_for(lambda: _peek(url, _states) == {"first": "closed"}, 30)
        assert _peek(url, _audit) == [("scheduler", "quiz-open", "first"),
                                                 ("scheduler", "quiz-closed", "first")]
        holder = _peek(url, _holder)
        leader = next(s for s in servers if s.proc is not None and f":{s.proc.pid}:" in holder)
        follower = next(s for s in servers if s is not leader)
        leader.stop(signal.SIGKILL)  # killed: its lease runs out after 3 s and the other process takes over
        run("quiz", "campaign", "create", "--slug", "second", "--name", "第二期", "--audience", "elderly",
            "--start", later(0.5), env=env)
        _wait_for(lambda: _peek(url, _states).get("second") == "open", 30)
        assert follower.proc is not None and f":{follower.proc.pid}:" in _peek(url, _holder)
        assert [a for a in _peek(url, _audit) if a[2] == "second"] == [("scheduler", "quiz-open",
                                                                                  "second")]
        log = follower.stop()
        assert log.count("leader: this process now leads") == 1  # not flapping while the other led
        assert "第二期" not in log
    finally:
        for server in servers:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()
