"""Warnings sent by several processes at once: one send rate shared by all (the platform counts per bot), and a
sending process killed mid-run loses nothing and sends at most the copy it had in hand twice."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest
from sqlalchemy import func, select
from telegram.ext import ExtBot

from bot import rate as rate_module
from bot import subscribers
from bot.channels.telegram import RetryingLimiter
from bot.channels.wecom import WeComRobot, shared_rate
from bot.outbox import Dispatcher, enqueue
from bot.rate import SharedRate
from bot.services import Services
from bot.storage.database import Database
from bot.storage.models import OutboxMessage
from bot.tips import alerts
from bot.vault import Vault
from tests.fake_telegram import FakeTelegram
from tests.fake_wechat import FakeWeComRobot
from tests.support import Server
from tests.test_broadcasts import approved, drafted, progress, with_broadcasts

CHATS = list(range(7100, 7190))
SECRET = "a-test-secret-key-for-the-vault-0123456789"
RATE = 20.0  # messages a second, for both processes together (the fake answers 429 above 30)


async def test_a_shared_rate_holds_for_every_pool_and_a_hold_stops_them_all(db_url: str, database: Database) -> None:
    pools = [Database(db_url), Database(db_url)]  # two processes' connection pools
    try:
        rates = [SharedRate(db, "telegram", per_second=40) for db in pools]
        taken: list[float] = []

        async def sender(rate: SharedRate) -> None:
            for _ in range(30):
                await rate.take()
                taken.append(time.monotonic())

        start = time.monotonic()
        await asyncio.gather(*(sender(r) for r in rates))
        elapsed = time.monotonic() - start
        assert len(taken) == 60
        assert elapsed >= (60 - 1) / 40 * 0.95  # not faster than the rate, whoever takes
        gaps = [b - a for a, b in zip(sorted(taken), sorted(taken)[1:], strict=False)]
        assert sum(g < 1 / 40 * 0.5 for g in gaps) <= 3  # evenly spaced, not in bursts
        await rates[0].hold(0.5)
        held = time.monotonic()
        await rates[1].take()
        assert time.monotonic() - held >= 0.45  # the other pool waited out the hold
    finally:
        for db in pools:
            await db.close()


async def test_a_429_to_one_process_holds_every_process_and_no_copy_is_lost_or_doubled(db_url: str,
                                                                                     database: Database) -> None:
    """Two processes' dispatchers, each with the application's own bot (PTB's rate limiter extended by ours), send
    one batch of alerts on one shared schedule. Telegram answers one send with "retry after 2": that send comes
    back to the outbox and the schedule holds both processes, instead of PTB pausing only the process that got it
    while the other goes on (and then releasing the paused one's sends in a burst)."""
    users = list(range(7300, 7360))
    with FakeTelegram() as fake:
        pools = [Database(db_url), Database(db_url)]
        bots = [ExtBot(fake.token, base_url=fake.base_url, rate_limiter=RetryingLimiter(3, 30)) for _ in pools]
        async with pools[0].transaction() as session:
            for user in users:
                await enqueue(session, dedup=f"hold:{user}", channel="telegram", target=str(user),
                              payload={"text": f"提醒 {user}"}, postgres=not pools[0].is_sqlite)
        dispatchers = [Dispatcher(db, {"telegram": alerts.telegram_sender(bot, Vault(SECRET))}, base_backoff=0.1,
                                  rates={"telegram": SharedRate(db, "telegram", per_second=RATE)},
                                  parallel={"telegram": 4}) for db, bot in zip(pools, bots, strict=True)]
        stop = asyncio.Event()
        try:
            for bot in bots:
                await bot.initialize()
            running = [asyncio.create_task(d.run(stop, poll=0.2)) for d in dispatchers]
            await fake.wait_for(lambda: len(fake.sent) >= 15, timeout=30)
            fake.fail("sendMessage", 429, times=1, retry_after=2)
            await fake.wait_for(lambda: len({c["chat_id"] for c in fake.sent}) == len(users), timeout=60)
            stop.set()
            await asyncio.gather(*running)
        finally:
            for bot in bots:
                await bot.shutdown()
            for db in pools:
                await db.close()
        calls = fake.calls_to("sendMessage")
        refused = [c for c in calls if c["status"] == 429]
        assert len(refused) == 1
        held = [c for c in calls if refused[0]["time"] + 0.5 < c["time"] < refused[0]["time"] + 1.9]
        assert held == []  # sends booked before the 429 may still go; after them, nobody sends until it is over
        assert sorted(c["chat_id"] for c in fake.sent) == users  # each once, the refused one included
        assert [v for v in fake.rate_violations if v["scope"] == "global"] == []


async def test_a_send_woken_too_late_gives_its_slot_up_so_no_two_leave_together(database: Database) -> None:
    """A process that stalls past a booked slot must not send at once beside the next slot's send (a burst the
    platform counts): the late one books again, and the sends stay a step apart."""
    rate = SharedRate(database, "late", per_second=10)
    await rate.take()
    late = asyncio.create_task(rate.take())  # books the slot 0.1 s on, and sleeps
    await asyncio.sleep(0.03)
    time.sleep(0.2)  # noqa: ASYNC251 -- the whole process stalls past that slot
    await late
    woke = time.monotonic()
    await rate.take()
    assert time.monotonic() - woke >= 0.09


async def test_a_process_late_for_every_slot_still_sends(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Late wake-ups give a slot up once, not for ever: a process too slow for any slot still sends."""
    monkeypatch.setattr(rate_module, "LATE", -1.0)  # every wake-up counts as late
    rate = SharedRate(database, "always-late", per_second=20)
    await asyncio.wait_for(rate.take(), 5)


def _env(db_env: dict[str, str], fake: FakeTelegram) -> dict[str, str]:
    return {**db_env, "FANGFEI_TELEGRAM__TOKEN": fake.token, "FANGFEI_TELEGRAM__BASE_URL": fake.base_url,
            "FANGFEI_TELEGRAM__WEBHOOK_SECRET": "broadcast-secret",
            "FANGFEI_TELEGRAM__MAX_MESSAGES_PER_SECOND": str(RATE), "FANGFEI_OUTBOX__LEASE_SECONDS": "3",
            "FANGFEI_OUTBOX__UNKNOWN_PAUSE_MINUTES": "0.02"}


async def _rows(services: Services, broadcast_id: int) -> list[Any]:
    async with services.db.session() as session:
        return list((await session.execute(select(OutboxMessage.status, OutboxMessage.unknowns)
                                           .where(OutboxMessage.broadcast_id == broadcast_id))).all())


async def test_two_processes_keep_one_wecom_robot_within_its_rate(db_url: str, database: Database) -> None:
    """WeCom counts messages per robot: two processes' robots for one group URL share its schedule, so together
    they stay within its limit (each alone would keep only its own); the fake refuses what is over with 45009."""
    limit, window = 6, 3.0  # 20 a minute in production; shorter here
    with FakeWeComRobot(rate_limit=(limit, window)) as fake:
        pools = [Database(db_url), Database(db_url)]
        robots = [WeComRobot(fake.url, limit, window=window, retries=0,
                             shared=shared_rate(db, fake.url, limit, window)) for db in pools]
        try:
            results = await asyncio.gather(*(robot.send_text(f"第{n}条：{i}") for n, robot in enumerate(robots)
                                             for i in range(limit)))
        finally:
            for robot in robots:
                await robot.close()
            for db in pools:
                await db.close()
        assert [r.kind for r in results] == ["sent"] * 2 * limit, [(r.reason, fake.rate_violations) for r in results]
        assert len(fake.received) == 2 * limit and fake.rate_violations == []


@pytest.mark.parametrize("kill", [False, True], ids=["both-live", "one-killed"])
async def test_two_processes_send_one_warning_within_the_shared_rate(db_env: dict[str, str], services: Services,
                                                                     kill: bool) -> None:
    services = with_broadcasts(services)
    async with services.db.transaction() as session:
        for chat in CHATS:
            await subscribers.subscribe(session, "telegram", str(chat), "elderly", None, None)
    with FakeTelegram() as fake:
        servers = [Server(_env(db_env, fake)) for _ in range(2)]
        for server in servers:
            server.env["FANGFEI_TELEGRAM__WEBHOOK_URL"] = f"{server.base}/telegram/webhook"
            server.start()
        try:
            broadcast_id = await drafted(services, audience="elderly", channels=["telegram"], urgent=True)
            await approved(services, broadcast_id)
            if kill:
                await fake.wait_for(lambda: len(fake.sent) >= 25, timeout=30)
                servers[0].proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
                servers[0].proc.wait()  # type: ignore[union-attr]
            for _ in range(300):
                if (await progress(services, broadcast_id))["pending"] == 0:
                    break
                await asyncio.sleep(0.1)
            shown = await progress(services, broadcast_id)
        finally:
            logs = [s.stop() for s in servers if s.proc and s.proc.poll() is None]
        copies = {chat: len(fake.texts_to(chat)) for chat in CHATS}
        rows = await _rows(services, broadcast_id)
        assert (shown["sent"], shown["pending"], shown["failed"]) == (len(CHATS), 0, 0)
        assert all(n >= 1 for n in copies.values())  # nothing lost
        duplicates = sum(n - 1 for n in copies.values())
        unknown = sum(1 for _, unknowns in rows if unknowns)
        if kill:
            assert duplicates <= 1  # at most the copy in the killed process's hand
            assert unknown <= 20  # the rows it had claimed (one batch), sent again by the other after the pause
        else:
            assert duplicates == 0 and unknown == 0
        # the two processes together kept to the shared rate: Telegram's flood limit was never hit
        assert [v for v in fake.rate_violations if v["scope"] == "global"] == []
        async with services.db.session() as session:
            assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == len(CHATS)
    assert all("Traceback" not in log for log in logs)

