"""The outbox: tip alerts and reporters' notices, delivered once through real parts — the database fixtures, a real
python-telegram-bot `Bot` against the fake Bot API, the WeCom robot client and the WeChat API client against their
fakes over HTTP, and a worker process killed in the middle of its work."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from telegram import Bot

from bot import delivery
from bot.channels.wechat_api import WeChatApi
from bot.channels.wecom import WeComRobot
from bot.config import Settings, TelegramSettings, TipSettings, WeChatSettings, WeComSettings
from bot.outbox import Dispatcher, Outcome, Sender, enqueue
from bot.services import Services
from bot.storage.database import Database
from bot.storage.models import OutboxMessage, Tip
from bot.tips import alerts, ledger
from bot.tips.ledger import Evidence, Report
from tests.fake_telegram import FakeTelegram
from tests.fake_wechat import FakeWeChat, FakeWeComRobot
from tests.stored import conversation_of
from tests.support import ROOT

STAFF_CHAT = -500
REPORTER = "7700123"
NAME, PHONE = "王小明", "13912345678"

KILLED_WORKER = """
import asyncio, os, signal, sys
from bot.outbox import Dispatcher
from bot.storage.database import Database

async def never(target, payload):
    raise AssertionError("this worker dies before sending")

async def main():
    db, lease = Database(sys.argv[1]), float(sys.argv[2])
    dispatcher = Dispatcher(db, {"telegram": never, "wecom": never}, lease_seconds=lease)
    print(len(await dispatcher.claim()), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


@pytest.fixture
async def robot() -> AsyncIterator[FakeWeComRobot]:
    async with FakeWeComRobot() as fake:
        yield fake


@pytest.fixture
async def wecom(robot: FakeWeComRobot) -> AsyncIterator[WeComRobot]:
    client = WeComRobot(robot.url, retries=1, backoff=0.01)
    yield client
    await client.close()


@pytest.fixture
def staff_settings(settings: Settings, telegram: FakeTelegram, robot: FakeWeComRobot) -> Settings:
    """Alerts to both the Telegram staff chat and the WeCom robot."""
    return settings.model_copy(update={
        "telegram": TelegramSettings(token=telegram.token, base_url=telegram.base_url, staff_chat_id=STAFF_CHAT),
        "wecom": WeComSettings(robot_webhook_url=robot.url)})


@pytest.fixture
def senders(bot: Bot, wecom: WeComRobot, services: Services) -> dict[str, Sender]:
    return {"telegram": alerts.telegram_sender(bot, services.vault), "wecom": alerts.wecom_sender(wecom)}


def only(settings: Settings, destination: str) -> Settings:
    return settings.model_copy(update={"tips": TipSettings(alert_telegram=destination == "telegram",
                                                           alert_wecom=destination == "wecom")})


async def file_tip(services: Services, settings: Settings | None, channel: str = "telegram",
                   user: str = REPORTER) -> Tip:
    """A named reporter files a tip with one photo; the alerts are queued in the same transaction."""
    postgres = not services.db.is_sqlite
    report = Report(what="有人在村委会旁边开会，说投资养老公寓每年返15%，拉人头还有奖励。", township="青山镇",
                    village="石桥村", money="约5万元，30多人参加", happened="上周六下午", anonymous=False, name=NAME,
                    contact=PHONE, evidence=[Evidence(kind="image", ref="photo-1")])
    async with services.db.transaction() as session:
        tip = await ledger.file(session, services.vault, channel, user, report, "pension-elderly-care", postgres)
        if settings is not None:
            await alerts.announce(session, settings, tip, len(report.evidence), postgres)
    return tip


async def outbox_rows(db: Database) -> list[OutboxMessage]:
    async with db.session() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [(b["text"], b["callback_data"]) for row in rows for b in row]


async def test_a_new_tips_alert_reaches_the_staff_chat_and_the_wecom_robot_without_the_reporter(
        services: Services, staff_settings: Settings, senders: dict[str, Sender], telegram: FakeTelegram,
        robot: FakeWeComRobot) -> None:
    tip = await file_tip(services, staff_settings)
    queued = await outbox_rows(services.db)
    assert [r.channel for r in queued] == ["telegram", "wecom"]
    for row in queued:  # nothing that names the reporter is stored in the outbox either
        stored = row.target + json.dumps(row.payload, ensure_ascii=False)
        assert NAME not in stored and PHONE not in stored and REPORTER not in stored

    dispatcher = Dispatcher(services.db, senders)
    assert await dispatcher.run_once() == 2
    [message] = await telegram.wait_sent(1, chat_id=STAFF_CHAT)
    [card] = await robot.wait_received(1)
    assert card["msgtype"] == "markdown"
    for text in (message["plain_text"], card["content"]):
        assert tip.receipt in text and "实名" in text and "青山镇 石桥村" in text and "以养老服务为名" in text
        assert "证据：1 份" in text and "养老公寓" in text
        assert NAME not in text and PHONE not in text and REPORTER not in text
    assert buttons(message) == [("认领", f"/take {tip.receipt}"), ("标记核查中", f"/verify {tip.receipt}")]

    assert await dispatcher.run_once() == 0  # nothing is sent twice
    assert len(telegram.messages_to(STAFF_CHAT)) == 1 and len(robot.received) == 1
    assert {(r.status, r.attempts) for r in await outbox_rows(services.db)} == {("sent", 1)}
    telegram.assert_no_violations()
    robot.assert_no_violations()


async def test_a_failing_wecom_endpoint_gets_the_alert_once_it_recovers(
        services: Services, staff_settings: Settings, wecom: WeComRobot, robot: FakeWeComRobot) -> None:
    tip = await file_tip(services, only(staff_settings, "wecom"))
    robot.fail(times=3, status=500)
    dispatcher = Dispatcher(services.db, {"wecom": alerts.wecom_sender(wecom)}, base_backoff=0.05)
    stop = asyncio.Event()
    worker = asyncio.create_task(dispatcher.run(stop, poll=0.02))
    try:
        [card] = await robot.wait_received(1)
        await asyncio.sleep(0.2)  # would a second copy follow?
    finally:
        stop.set()
        await worker
    assert tip.receipt in card["content"] and len(robot.received) == 1
    [row] = await outbox_rows(services.db)
    assert row.status == "sent" and row.attempts == 2 and row.last_error is None  # 2 robot tries per attempt
    robot.assert_no_violations()


async def test_a_worker_killed_between_claim_and_send_delays_the_alert_but_never_doubles_it(
        services: Services, staff_settings: Settings, senders: dict[str, Sender], telegram: FakeTelegram,
        robot: FakeWeComRobot) -> None:
    tip = await file_tip(services, staff_settings)
    lease = 2.0
    killed = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", KILLED_WORKER,
                                                      services.settings.database.url, str(lease)],
                                     cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL and killed.stdout.strip() == "2", killed.stderr
    assert {(r.status, r.attempts) for r in await outbox_rows(services.db)} == {("pending", 1)}

    dispatcher = Dispatcher(services.db, senders)
    assert await dispatcher.run_once() == 0  # the dead worker's lease still holds the rows
    handled = 0
    for _ in range(int(lease * 20) + 20):
        handled = await dispatcher.run_once()
        if handled:
            break
        await asyncio.sleep(0.1)
    assert handled == 2
    await telegram.wait_sent(1, chat_id=STAFF_CHAT)
    await robot.wait_received(1)
    assert await dispatcher.run_once() == 0
    assert len(telegram.messages_to(STAFF_CHAT)) == 1 and len(robot.received) == 1
    assert tip.receipt in robot.received[0]["content"]
    assert {(r.status, r.attempts) for r in await outbox_rows(services.db)} == {("sent", 2)}


async def test_two_dispatchers_at_once_deliver_every_message_once(
        services: Services, bot: Bot, telegram: FakeTelegram) -> None:
    users = range(3001, 3021)
    async with services.db.transaction() as session:
        for user in users:
            assert await enqueue(session, dedup=f"test:{user}", channel="telegram", target=str(user),
                                 payload={"text": f"提醒 {user}"}, postgres=not services.db.is_sqlite)
    other_process = Database(services.settings.database.url)  # its own engine, pool and (SQLite) write lock
    sender = alerts.telegram_sender(bot, services.vault)
    first = Dispatcher(services.db, {"telegram": sender}, batch=3)
    second = Dispatcher(other_process, {"telegram": sender}, batch=3)
    done = {"first": 0, "second": 0}

    async def work(name: str, dispatcher: Dispatcher) -> None:
        while handled := await dispatcher.run_once():
            done[name] += handled

    try:
        await asyncio.gather(work("first", first), work("second", second))
    finally:
        await other_process.close()
    assert done["first"] + done["second"] == len(users) and done["first"] and done["second"]
    assert all(telegram.texts_to(user) == [f"提醒 {user}"] for user in users)
    assert {(r.status, r.attempts) for r in await outbox_rows(services.db)} == {("sent", 1)}
    telegram.assert_no_violations()


async def test_a_permanent_failure_is_given_up_and_a_lasting_one_stops_after_max_attempts(
        services: Services, staff_settings: Settings, senders: dict[str, Sender], telegram: FakeTelegram) -> None:
    telegram.fail("sendMessage", 403, times=None, chat_id=STAFF_CHAT)  # the bot was removed from the staff chat
    await file_tip(services, only(staff_settings, "telegram"))
    dispatcher = Dispatcher(services.db, senders, base_backoff=0.0, max_attempts=3)
    assert await dispatcher.run_once() == 1
    assert await dispatcher.run_once() == 0
    [row] = await outbox_rows(services.db)
    assert row.status == "failed" and row.attempts == 1 and row.last_error.startswith("Forbidden")
    assert len(telegram.calls_to("sendMessage")) == 1

    telegram.clear_failures()
    telegram.fail("sendMessage", 500, times=None)  # a server that keeps failing: retried, but not forever
    async with services.db.transaction() as session:
        await enqueue(session, dedup="test:lasting", channel="telegram", target="3100", payload={"text": "提醒"},
                      postgres=not services.db.is_sqlite)
    while await dispatcher.run_once():
        pass
    row = (await outbox_rows(services.db))[-1]
    assert row.status == "failed" and row.attempts == 3 and row.last_error


async def test_a_wechat_reporter_outside_the_48_hour_window_finds_the_notice_at_their_next_message(
        services: Services) -> None:
    async with FakeWeChat() as fake:
        wechat = WeChatSettings(token="t", app_id=fake.appid, app_secret=fake.secret, api_base_url=fake.api_base_url)
        on_wechat = dataclasses.replace(services, settings=services.settings.model_copy(update={"wechat": wechat}))
        api = WeChatApi(wechat, services.db)
        postgres = not services.db.is_sqlite
        try:
            gone = await file_tip(services, None, channel="wechat", user="o-gone")
            here = await file_tip(services, None, channel="wechat", user="o-here")
            fake.user_wrote("o-here")
            async with services.db.transaction() as session:
                for tip in (gone, here):
                    await ledger.change(session, tip, "staff:test", status="verifying")
                    text = f"您的线索 {tip.receipt} 已开始核查。"
                    await alerts.tell_reporter(session, on_wechat.settings, on_wechat.vault, tip, text, postgres)
            rows = await outbox_rows(services.db)
            assert len(rows) == 2 and all("o-gone" not in r.target and "o-here" not in r.target for r in rows)

            dispatcher = Dispatcher(services.db, {"wechat": alerts.wechat_sender(api, services.db, services.vault)})
            assert await dispatcher.run_once() == 2
        finally:
            await api.close()
        assert fake.texts_to("o-here") == [f"您的线索 {here.receipt} 已开始核查。"]
        assert fake.texts_to("o-gone") == [] and len(fake.calls_to("message/custom/send")) == 2
        fake.assert_no_violations()
    gone_there = await conversation_of(services, "wechat", "o-gone")
    assert gone_there is not None and gone_there.notice == f"您的线索 {gone.receipt} 已开始核查。"
    assert await conversation_of(services, "wechat", "o-here") is None
    assert {r.status for r in await outbox_rows(services.db)} == {"sent"}


async def test_a_web_reporter_gets_the_notice_directly_once(services: Services) -> None:
    tip = await file_tip(services, None, channel="web", user="web-user-1")
    postgres = not services.db.is_sqlite
    for _ in range(2):  # told twice (a retried request): shown once
        async with services.db.transaction() as session:
            await alerts.tell_reporter(session, services.settings, services.vault, tip, "您的线索已转交相关部门。",
                                          postgres)
    assert await outbox_rows(services.db) == []
    conversation = await conversation_of(services, "web", "web-user-1")
    assert conversation is not None and conversation.notice == "您的线索已转交相关部门。"
    assert "web-user-1" not in conversation.row.user_id and "转交" not in (conversation.row.notice or "")


async def test_announcing_a_tip_twice_queues_its_alerts_once(services: Services, staff_settings: Settings) -> None:
    tip = await file_tip(services, staff_settings)
    async with services.db.transaction() as session:
        await alerts.announce(session, staff_settings, tip, 1, not services.db.is_sqlite)
        assert not await enqueue(session, dedup=f"tip-alert:{tip.receipt}:telegram", channel="telegram",
                                 target="1", payload={}, postgres=not services.db.is_sqlite)
    async with services.db.session() as session:
        assert await session.scalar(select(func.count(OutboxMessage.id))) == 2


async def test_messages_for_a_channel_without_a_sender_wait_with_one_warning(
        services: Services, caplog: pytest.LogCaptureFixture) -> None:
    async with services.db.transaction() as session:
        await enqueue(session, dedup="test:wechat", channel="wechat", target="x", payload={"text": "提醒"},
                      postgres=not services.db.is_sqlite)

    async def unused(target: str, payload: dict[str, Any]) -> Outcome:
        raise AssertionError("not this channel")

    caplog.set_level(logging.WARNING, logger="bot.outbox")
    dispatcher = Dispatcher(services.db, {"telegram": unused})
    assert await dispatcher.run_once() == 0
    dispatcher._orphans_checked = None  # as if a minute had passed
    assert await dispatcher.run_once() == 0
    [row] = await outbox_rows(services.db)
    assert row.status == "pending" and row.attempts == 0
    assert len([r for r in caplog.records if "'wechat'" in r.getMessage()]) == 1


async def test_the_background_worker_sends_what_the_settings_allow(
        services: Services, staff_settings: Settings, bot: Bot, telegram: FakeTelegram,
        robot: FakeWeComRobot) -> None:
    configured = dataclasses.replace(services, settings=staff_settings)
    worker = delivery.start_dispatcher(configured, telegram_bot=bot, poll=0.05)
    try:
        assert sorted(worker.dispatcher.senders) == ["fetch-telegram", "relay-telegram", "telegram", "warn-notice",
                                                     "warn-telegram", "wecom"]  # no WeChat here
        tip = await file_tip(services, staff_settings)
        [message] = await telegram.wait_sent(1, chat_id=STAFF_CHAT)
        [card] = await robot.wait_received(1)
    finally:
        await worker.stop()
    assert worker.task is not None and worker.task.done()
    assert tip.receipt in message["plain_text"] and tip.receipt in card["content"]
