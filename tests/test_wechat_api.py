"""WeChat outbound: slow answers as customer-service messages, the shared access token, window and quota errors,
`fangfei wechat menu`, and the WeCom staff robot — against fake WeChat and WeCom servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.channels.wechat import WeChatChannel
from bot.channels.wechat_api import WeChatApi
from bot.channels.wecom import Delivery, WeComRobot
from bot.config import WeChatSettings
from bot.engine import Engine, Guard
from bot.storage.conversations import key_of
from bot.storage.models import InboxRecord
from bot.types import Inbound, Reply
from bot.web.app import create_app
from tests.fake_wechat import FakeWeChat, FakeWeComRobot
from tests.postgres import connect, waiting_for_locks
from tests.test_cli import run
from tests.wechat_client import AES_KEY, APP_ID, TOKEN, WeChatServer, text_xml


class SlowEngine(Engine):
    """The real engine, made to miss WeChat's reply budget (as under a database hiccup)."""

    delay = 0.6

    async def handle_once(self, inbound: Inbound, guard: Guard) -> list[Reply] | None:
        await asyncio.sleep(self.delay)
        return await super().handle_once(inbound, guard)


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeChat]:
    async with FakeWeChat(APP_ID, quota=5) as f:
        yield f


def settings_for(fake: FakeWeChat, budget: float = 4.0) -> WeChatSettings:
    return WeChatSettings(token=TOKEN, encoding_aes_key=AES_KEY, app_id=fake.appid, app_secret=fake.secret,
                          api_base_url=fake.api_base_url, reply_budget_seconds=budget)


async def test_a_slow_answer_comes_once_as_a_customer_service_message(engine: Engine, fake: FakeWeChat) -> None:
    slow = SlowEngine(engine.services)
    channel = WeChatChannel(slow, settings_for(fake, budget=0.2))
    app = create_app(slow, channel.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://oa.test") as client:
        wechat = WeChatServer(client, safe=True)
        fake.user_wrote("o-slow")
        xml = text_xml("o-slow", "消费全返是真的吗", msg_id=777001)
        first = await wechat.post(xml)
        assert first.status_code == 200 and first.text == "success"  # empty passive reply, WeChat won't retry
        retry = await wechat.post(xml)  # WeChat's retry while we are still working
        assert retry.text == "success"
        await fake.wait_sent(1, touser="o-slow")
        await asyncio.sleep(SlowEngine.delay * 2)
    await channel.close()
    texts = fake.texts_to("o-slow")
    assert len(texts) == 1 and "消费全返" in texts[0]
    async with engine.services.db.session() as s:
        row = await s.get(InboxRecord, "777001")
        assert row is not None and row.status == "sent"
    fake.assert_no_violations()


async def test_window_and_quota_errors_are_recorded_not_retried(engine: Engine, fake: FakeWeChat) -> None:
    slow = SlowEngine(engine.services)
    channel = WeChatChannel(slow, settings_for(fake, budget=0.1))
    app = create_app(slow, channel.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://oa.test") as client:
        wechat = WeChatServer(client, safe=True)
        await wechat.post(text_xml("o-gone", "消费全返是真的吗", msg_id=777002))  # never opened a window
        await asyncio.sleep(SlowEngine.delay + 0.5)
    await channel.close()
    async with engine.services.db.session() as s:
        row = await s.get(InboxRecord, "777002")
        assert row is not None and row.status == "cs-45015"
    assert len(fake.calls_to("message/custom/send")) == 1  # not retried blindly


async def test_long_answers_continue_as_customer_service_messages(engine: Engine, fake: FakeWeChat) -> None:
    channel = WeChatChannel(engine, settings_for(fake))
    app = create_app(engine, channel.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://oa.test") as client:
        wechat = WeChatServer(client, safe=True)
        fake.user_wrote("o-long")
        await wechat.say("o-long", "消费全返是真的吗")
        details = await wechat.say("o-long", "1")  # 详细说说: three parts, may exceed one passive reply
        await asyncio.sleep(0.5)
    await channel.close()
    everything = details + "".join(fake.texts_to("o-long"))
    assert "常见套路" in everything and "怎么办" in everything
    fake.assert_no_violations()


async def test_processes_share_one_access_token_and_refresh_it_once(engine: Engine, fake: FakeWeChat) -> None:
    first = WeChatApi(settings_for(fake), engine.services.db)
    second = WeChatApi(settings_for(fake), engine.services.db)  # another worker process on the same database
    try:
        for api, user in ((first, "o-a"), (second, "o-b"), (first, "o-c")):
            fake.user_wrote(user)
            assert (await api.send_text(user, "提醒：不要相信保本高息。")).ok
        assert fake.token_requests == 1
        fake.expire_token()
        fake.user_wrote("o-d")
        assert (await second.send_text("o-d", "提醒")).ok
        assert (await first.send_text("o-d", "提醒")).ok
        assert fake.token_requests == 2  # refreshed once, then shared
        fake.fail("message/custom/send", status=500, times=2)
        assert (await first.send_text("o-d", "重试后送达")).ok  # server errors are retried with backoff
        assert fake.texts_to("o-d")[-1] == "重试后送达"
    finally:
        await first.close()
        await second.close()


def test_wechat_menu_command_publishes_the_configured_menu(tmp_path: Path) -> None:
    with FakeWeChat() as fake:
        env = {"FANGFEI_WECHAT__APP_ID": fake.appid, "FANGFEI_WECHAT__APP_SECRET": fake.secret,
               "FANGFEI_WECHAT__API_BASE_URL": fake.api_base_url,
               "FANGFEI_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'menu.db'}"}
        assert "published" in run("wechat", "menu", env=env).stdout
        names = [b["name"] for b in fake.menu["button"]]
        assert names == ["问问题", "风险自测", "更多"]
        fake.assert_no_violations()
        fake.fail("menu/create", errcode=40016)
        refused = run("wechat", "menu", env=env, check=False)
        assert refused.returncode == 1 and "40016" in refused.stderr


async def test_wecom_robot_keeps_under_its_rate_limit_and_retries() -> None:
    async with FakeWeComRobot(rate_limit=(5, 2.0)) as robot:
        client = WeComRobot(robot.url, per_minute=5, window=2.0, backoff=0.05)
        try:
            start = time.monotonic()
            results = await asyncio.gather(*(client.send_text(f"新线索 FF-2026-00000{n}") for n in range(8)))
            assert all(r.ok for r in results) and time.monotonic() - start >= 2.0
            assert len(robot.received) == 8 and not robot.rate_violations
            robot.fail(times=2, status=500)
            assert (await client.send_markdown("**新线索** 请处理")).ok
            assert robot.received[-1]["msgtype"] == "markdown"
        finally:
            await client.close()
        wrong = WeComRobot(robot.url.replace(robot.key, "wrong-key"), backoff=0.01)
        calls = len(robot.calls)
        try:
            # reported (the outbox may try later), not retried here
            assert await wrong.send_text("x") == Delivery("retry", "errcode 93000")
            assert len(robot.calls) == calls + 1
        finally:
            await wrong.close()
        robot.assert_no_violations()


async def test_an_answer_worked_out_again_past_the_budget_comes_as_a_customer_service_message(
        engine: Engine, fake: FakeWeChat) -> None:
    """Staff change a resident's conversation while their message is being answered, so the answer is worked out
    again; that second attempt then waits for the database past the reply budget. WeChat gets the empty reply, and
    the answer (with the staff's news) follows once, by customer service, not stored for a retry that never comes."""
    if engine.services.db.is_sqlite:
        pytest.skip("PostgreSQL: SQLite lets one writer in at a time")
    channel = WeChatChannel(engine, settings_for(fake, budget=1.5))
    app = create_app(engine, channel.routes())
    staff, maintenance = await connect(engine), await connect(engine)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://oa.test") as client:
            wechat = WeChatServer(client, safe=True)
            fake.user_wrote("o-race")
            await wechat.say("o-race", "你好")
            change, pause = staff.transaction(), maintenance.transaction()
            await change.start()  # what `leave_notice` does: hold the row, add the news, move the version
            await staff.execute("UPDATE conversations SET notice = $1, version = version + 1"
                                " WHERE channel = 'wechat' AND user_id = $2",
                                engine.services.vault.seal("您的线索已受理。"),
                                key_of(engine.services.vault, "wechat", "o-race"))
            message = asyncio.create_task(wechat.post(text_xml("o-race", "帮助", msg_id=777010)))
            await waiting_for_locks(engine, 1)  # the first attempt's write waits for the staff change
            await pause.start()  # and the database is about to stall (a table lock, as by a careless migration)
            queued = asyncio.create_task(maintenance.execute("LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE"))
            await waiting_for_locks(engine, 2)
            await change.commit()  # the first attempt loses; the second waits for the stalled table
            await queued
            await waiting_for_locks(engine, 1)
            first = await message  # the budget passes while the second attempt waits
            assert first.status_code == 200 and first.text == "success"
            await pause.rollback()
            await fake.wait_sent(1, touser="o-race")
            await asyncio.sleep(0.3)
    finally:
        await staff.close()
        await maintenance.close()
        await channel.close()
    texts = fake.texts_to("o-race")
    assert len(texts) == 1 and "您的线索已受理" in texts[0] and "怎么用我" in texts[0]
    async with engine.services.db.session() as s:
        row = await s.get(InboxRecord, "777010")
        assert row is not None and row.status == "sent"
