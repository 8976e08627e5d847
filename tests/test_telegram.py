"""Telegram end to end: python-telegram-bot's real HTTP client against a fake Bot API server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.routing import Route

from bot.channels.telegram import TelegramChannel, split_text
from bot.config import Settings, StaffMember, TelegramSettings
from bot.engine import Engine
from bot.storage.models import GroupChat, Subscriber
from bot.types import Reply
from bot.web.app import create_app
from tests.fake_telegram import FakeTelegram
from tests.stored import conversation_of

RESIDENT = 1001
STAFF = 2002
STAFF_CHAT = -500
GROUP = -700


def telegram_settings(fake: FakeTelegram, **extra: Any) -> TelegramSettings:
    return TelegramSettings(token=fake.token, base_url=fake.base_url, staff_chat_id=STAFF_CHAT,
                            staff=[StaffMember(id=STAFF, role="admin")], **extra)


@pytest.fixture
def fake(telegram: FakeTelegram) -> FakeTelegram:
    """The shared fake Bot API server (tests/conftest.py)."""
    return telegram


@pytest.fixture
async def channel(engine: Engine, fake: FakeTelegram) -> AsyncIterator[TelegramChannel]:
    ch = TelegramChannel(engine, telegram_settings(fake))
    await ch.start()
    yield ch
    await ch.stop()
    fake.assert_no_violations()


def keyboard_labels(message: dict[str, Any]) -> list[str]:
    markup = message.get("reply_markup") or {}
    return [b["text"] for row in markup.get("inline_keyboard", []) for b in row]


async def say(fake: FakeTelegram, text: str, user: int = RESIDENT, **kw: Any) -> list[dict[str, Any]]:
    """The resident writes; returns the bot's new messages once it has answered."""
    chat = kw.get("chat_id") or user
    before = len(fake.messages_to(chat))
    fake.user_message(user, text, **kw)
    return await settled(fake, chat, before)


async def settled(fake: FakeTelegram, chat: int, before: int) -> list[dict[str, Any]]:
    """Wait for the bot's answer to arrive and stop growing (one update's replies are sent back to back)."""
    await fake.wait_for(lambda: len(fake.messages_to(chat)) > before)
    while True:
        count = len(fake.messages_to(chat))
        await asyncio.sleep(0.25)
        if len(fake.messages_to(chat)) == count:
            return fake.messages_to(chat)[before:]


async def press(fake: FakeTelegram, label: str, chat: int = RESIDENT, user: int | None = None) -> list[dict]:
    before = len(fake.messages_to(chat))
    fake.press(chat, label, user_id=user)
    return await settled(fake, chat, before)


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 5) -> bool:
    """Poll an async condition until it holds (updates are processed in the background)."""
    for _ in range(int(seconds / 0.1)):
        if await check():
            return True
        await asyncio.sleep(0.1)
    return await check()


def text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m["plain_text"] for m in messages)


async def test_a_residents_full_private_conversation(channel: TelegramChannel, fake: FakeTelegram,
                                                     engine: Engine) -> None:
    assert [c["command"] for c in fake.commands] == ["start", "ask", "check", "menu", "report", "status",
                                                     "cancel", "subscribe", "unsubscribe", "help"]
    assert fake.commands[1]["description"].startswith("问问题")

    menu = await say(fake, "/start")
    assert "防范非法集资小助手" in text(menu)
    assert keyboard_labels(menu[-1]) == ["问问题", "风险自测", "知识答题", "我要举报", "查询举报", "订阅提醒"]

    await press(fake, "问问题")
    answer = await say(fake, "养老院让交钱订床位，每年还给利息，靠谱吗")
    assert answer[-1]["plain_text"].startswith("【") and "详细说说" in keyboard_labels(answer[-1])
    more = await press(fake, "详细说说")
    assert len(more) == 3 and "常见套路" in more[0]["plain_text"]

    await press(fake, "风险自测")
    report = await say(fake, "有人说投资养老公寓每年返百分之十五，拉人还有奖励 <内部名额> & 保密")
    assert "风险很高" in report[0]["plain_text"]
    assert "<内部名额>" in text(report) or "利诱性" in text(report)  # user text is escaped, never parsed as HTML
    assert "我要举报" in keyboard_labels(report[-1])

    await press(fake, "回主菜单")
    await press(fake, "订阅提醒")
    await press(fake, "学生")
    await press(fake, "青山镇")
    done = await press(fake, "石桥村")
    assert "订阅好了（学生 · 青山镇 石桥村）" in text(done)
    async with engine.services.db.session() as s:
        sub = await s.scalar(select(Subscriber).where(Subscriber.channel == "telegram"))
        assert sub is not None and sub.user_id == str(RESIDENT) and sub.village == "石桥村"
    await fake.wait_for(lambda: not fake.unanswered_callbacks)
    assert len(fake.callback_answers) == 8


async def test_stale_and_foreign_buttons_expire_politely(channel: TelegramChannel, fake: FakeTelegram) -> None:
    first = await say(fake, "/start")
    old_data = first[-1]["reply_markup"]["inline_keyboard"][1][0]["callback_data"]
    await say(fake, "/menu")
    expired = await _callback(fake, RESIDENT, old_data)
    assert "过期" in text(expired) and "问问题" in keyboard_labels(expired[-1])
    other = 4242
    await say(fake, "/start", user=other)
    foreign = await _callback(fake, other, old_data)
    assert "过期" in text(foreign)
    await fake.wait_for(lambda: not fake.unanswered_callbacks)


async def _callback(fake: FakeTelegram, user: int, data: str) -> list[dict[str, Any]]:
    before = len(fake.messages_to(user))
    fake.callback(user, data, message_id=fake.messages_to(RESIDENT)[0]["message_id"], chat_id=user)
    return await settled(fake, user, before)


async def test_group_answers_commands_mentions_and_replies_only(channel: TelegramChannel, fake: FakeTelegram,
                                                                engine: Engine) -> None:
    fake.my_chat_member(GROUP, "group", "left", "member", title="李家村村民群")
    await fake.wait_for(lambda: fake.messages_to(GROUP))
    assert "在群里我不插话" in fake.messages_to(GROUP)[0]["plain_text"]

    fake.user_message(RESIDENT, "今天谁去赶集？顺便买点鸡蛋", chat_id=GROUP, chat_type="group")
    fake.user_message(RESIDENT, "听说镇上开了个新超市", chat_id=GROUP, chat_type="group")
    asked = await say(fake, "/ask@fangfei_test_bot 消费全返是真的吗", chat_id=GROUP, chat_type="group")
    assert len(fake.messages_to(GROUP)) == 1 + len(asked)  # the chatter got nothing
    assert "消费全返" in text(asked)
    mention = await say(fake, "@fangfei_test_bot 有人说交钱认养果树每年分红，靠谱吗", chat_id=GROUP,
                        chat_type="group")
    assert "风险" in text(mention)
    reply = await say(fake, "纪念钞高价回购是真的吗", chat_id=GROUP, chat_type="group", reply_to_bot=True)
    assert "【" in text(reply)
    off_topic = await say(fake, "/ask 明天天气怎么样", chat_id=GROUP, chat_type="group")
    assert "答不上来" in text(off_topic)

    fake.my_chat_member(GROUP, "group", "member", "left", title="李家村村民群")
    await fake.wait_for(lambda: not fake.pending_updates)

    async def removed() -> bool:
        async with engine.services.db.session() as s:
            return await s.scalar(select(GroupChat.active).where(GroupChat.chat_id == str(GROUP))) is False

    assert await eventually(removed)


async def test_staff_commands_only_for_staff(channel: TelegramChannel, fake: FakeTelegram) -> None:
    refused = await say(fake, "/stats")
    assert "只对工作人员开放" in text(refused)
    figures = await say(fake, "/stats", user=STAFF, chat_id=STAFF_CHAT, chat_type="supergroup")
    assert "订阅人数" in text(figures)
    in_residents_group = await say(fake, "/gaps", user=STAFF, chat_id=GROUP, chat_type="group")
    assert "工作群" in text(in_residents_group)
    unanswered = await say(fake, "火车票怎么买")  # a resident's question the knowledge base cannot answer
    assert "答不上来" in text(unanswered)
    gaps = await say(fake, "/gaps", user=STAFF, chat_id=STAFF_CHAT, chat_type="supergroup")
    assert "火车票怎么买" in text(gaps)


async def test_blocked_user_is_marked_unreachable(channel: TelegramChannel, fake: FakeTelegram,
                                                  engine: Engine) -> None:
    await say(fake, "订阅提醒")
    await press(fake, "老年人")
    await press(fake, "跳过")

    async def reachable(user: int) -> bool | None:
        async with engine.services.db.session() as s:
            return await s.scalar(select(Subscriber.reachable).where(Subscriber.user_id == str(user)))

    assert await reachable(RESIDENT) is True
    fake.my_chat_member(RESIDENT, "private", "member", "kicked", user_id=RESIDENT)
    await fake.wait_for(lambda: not fake.pending_updates)
    assert await eventually(lambda: _is(reachable(RESIDENT), False))

    # a send refused with 403 marks the user too
    other = 3003
    await say(fake, "订阅提醒", user=other)
    await press(fake, "学生", chat=other)
    await press(fake, "跳过", chat=other)
    fake.fail("sendMessage", 403, times=5, chat_id=other)
    fake.user_message(other, "你好")
    await fake.wait_for(lambda: not fake.pending_updates)
    assert await eventually(lambda: _is(reachable(other), False))


async def _is(value: Awaitable[object], expected: object) -> bool:
    return await value is expected


async def test_429_storm_and_server_errors_lose_nothing_and_send_nothing_twice(channel: TelegramChannel,
                                                                              fake: FakeTelegram) -> None:
    fake.fail("sendMessage", 429, times=6, retry_after=1)
    fake.fail("sendMessage", 500, times=2)
    users = list(range(5001, 5011))
    for u in users:
        fake.user_message(u, "消费全返是真的吗")
    await fake.wait_for(lambda: all(fake.messages_to(u) for u in users), timeout=30)
    for u in users:
        sent = fake.messages_to(u)
        assert len(sent) == 1 and "消费全返" in sent[0]["plain_text"]
    assert not fake.rate_violations


async def test_restart_mid_conversation_keeps_the_state(engine: Engine, fake: FakeTelegram) -> None:
    first = TelegramChannel(engine, telegram_settings(fake))
    await first.start()
    await say(fake, "/start")
    await press(fake, "风险自测")
    await first.stop()
    second = TelegramChannel(Engine(engine.services), telegram_settings(fake))
    await second.start()
    try:
        report = await say(fake, "交三千会员费，平台帮我还清五万网贷")
        assert "风险" in report[0]["plain_text"]
    finally:
        await second.stop()
    fake.assert_no_violations()


async def test_webhook_checks_the_secret(engine: Engine, fake: FakeTelegram) -> None:
    settings = telegram_settings(fake, webhook_url="https://bot.example.gov.cn/telegram/webhook",
                                 webhook_secret="s3cret-token")
    ch = TelegramChannel(engine, settings)
    await ch.start()
    try:
        assert fake.webhook["url"] == settings.webhook_url
        app = create_app(engine, [Route(settings.webhook_path, ch.webhook, methods=["POST"])])
        update = fake.user_message(RESIDENT, "/start", queue=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
                res = await client.post(settings.webhook_path, json=update, headers=headers)
                assert res.status_code == 403
            bad = await client.post(settings.webhook_path, content=b"{oops",
                                    headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"})
            assert bad.status_code == 400
            assert fake.messages_to(RESIDENT) == []  # nothing processed
            ok = await client.post(settings.webhook_path, json=update,
                                   headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"})
            assert ok.status_code == 200
        await fake.wait_for(lambda: fake.messages_to(RESIDENT))
        assert "防范非法集资小助手" in fake.messages_to(RESIDENT)[0]["plain_text"]
    finally:
        await ch.stop()
    fake.assert_no_violations()


async def test_long_answers_are_split_at_paragraphs(channel: TelegramChannel, fake: FakeTelegram) -> None:
    paragraph = "一段很长的说明，" * 60
    long_text = "\n\n".join(f"{n}. {paragraph}" for n in range(12))
    assert len(long_text) > 4096
    await channel.send(RESIDENT, [Reply(long_text)])
    sent = fake.messages_to(RESIDENT)
    assert len(sent) >= 2 and all(len(m["plain_text"]) <= 4096 for m in sent)
    assert "".join(m["plain_text"] for m in sent).replace("\n", "") == long_text.replace("\n", "")
    assert all(m["plain_text"].split(".")[0].isdigit() for m in sent)  # each message starts at a paragraph


def test_split_text_respects_the_limit() -> None:
    assert split_text("短") == ["短"]
    chunks = split_text("a" * 10000)
    assert [len(c) for c in chunks] == [4096, 4096, 1808]
    assert split_text("x" * 10 + "\n\n" + "y" * 10, limit=15) == ["x" * 10, "y" * 10]


def test_webhook_url_requires_a_secret(base_settings: Settings) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="webhook_secret"):
        Settings(**{**base_settings.model_dump(), "telegram": {"token": "1:x", "webhook_url": "https://x/y"}})


async def test_a_send_that_finally_fails_is_logged_with_its_reason(channel: TelegramChannel, fake: FakeTelegram,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    fake.fail("sendMessage", 500, times=None, chat_id=RESIDENT)
    await channel.send(RESIDENT, [Reply("第一条"), Reply("第二条")])
    fake.clear_failures()
    assert fake.messages_to(RESIDENT) == []
    attempts = [c for c in fake.calls_to("sendMessage") if c["status"] == 500]
    assert len(attempts) == 1 + channel.settings.send_retries  # bounded retries, then it stops
    failures = [r for r in caplog.records if "not delivered" in r.getMessage()]
    assert failures and "NetworkError" in failures[0].getMessage() and "第一条" not in caplog.text
    # the channel keeps serving
    assert "防范非法集资小助手" in text(await say(fake, "/start"))


async def test_an_update_delivered_again_by_the_webhook_is_handled_once(engine: Engine, fake: FakeTelegram) -> None:
    """Telegram redelivers a webhook update it got no answer for in time: 3 copies at once, then 50 in a burst.
    Each is processed once: the report moves one step per update, and each answer is sent once."""
    settings = telegram_settings(fake, webhook_url="https://bot.example.gov.cn/telegram/webhook",
                                 webhook_secret="s3cret-token")
    ch = TelegramChannel(engine, settings)
    await ch.start()
    headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"}
    app = create_app(engine, [Route(settings.webhook_path, ch.webhook, methods=["POST"])])
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            async def deliver(update: dict[str, Any], copies: int) -> list[dict[str, Any]]:
                before = len(fake.messages_to(RESIDENT))
                answers = await asyncio.gather(*(client.post(settings.webhook_path, json=update, headers=headers)
                                                 for _ in range(copies)))
                assert {a.status_code for a in answers} == {200}
                return await settled(fake, RESIDENT, before)

            await deliver(fake.user_message(RESIDENT, "举报", queue=False), 1)
            what = await deliver(fake.user_message(RESIDENT, "有人让村里老人投钱养殖，说每月返10%", queue=False), 3)
            assert [m["plain_text"][:3] for m in what] == ["第2步"]  # asked once who it was, not three steps on
            who = await deliver(fake.user_message(RESIDENT, "一家叫富农的合作社", queue=False), 50)
            assert [m["plain_text"][:3] for m in who] == ["第3步"]
            await asyncio.sleep(0.5)  # any late copy would have answered by now
            assert len(fake.messages_to(RESIDENT)) == len(what) + len(who) + 2  # the start: welcome + first question
    finally:
        await ch.stop()
    stored = await conversation_of(engine.services, "telegram", str(RESIDENT))
    assert stored is not None and stored.row.step == "where"
    assert stored.state["data"]["what"] == "有人让村里老人投钱养殖，说每月返10%"
    assert stored.state["data"]["who"] == "一家叫富农的合作社"
    fake.assert_no_violations()


async def test_updates_fetched_again_by_polling_a_tap_and_a_group_join_are_handled_once(
        channel: TelegramChannel, fake: FakeTelegram, engine: Engine) -> None:
    """After a restart, polling can fetch updates it had already handled: the copy gets no second answer, a
    repeated button tap runs its action once, a repeated "added to the group" introduces the bot once."""
    first = await say(fake, "/start")
    again = fake.user_message(RESIDENT, "/help", queue=False)
    before = len(fake.messages_to(RESIDENT))
    fake.queue(dict(again))
    fake.queue(dict(again))
    helped = await settled(fake, RESIDENT, before)
    assert text(helped).count("怎么用我") == 1 and len(helped) == 2  # the help, once (two messages)

    before = len(fake.messages_to(RESIDENT))
    tap = fake.press(RESIDENT, "问问题")
    fake.queue({**tap})
    asked = await settled(fake, RESIDENT, before)
    await asyncio.sleep(0.5)
    assert len(asked) == 1 and len(fake.messages_to(RESIDENT)) == before + 1  # one answer to the tap
    assert len(fake.calls_to("answerCallbackQuery")) == 1

    joined = fake.my_chat_member(GROUP, "group", "left", "member", title="南关村防非群", queue=False)
    fake.queue(dict(joined))
    fake.queue(dict(joined))
    await fake.wait_for(lambda: fake.messages_to(GROUP))
    await asyncio.sleep(1.0)
    assert len(fake.messages_to(GROUP)) == 1
    assert first  # the conversation began normally
