"""Abuse limits and bounded storage: a resident who floods the bot is asked to wait and loses nothing; the tables
that grow with traffic stay bounded."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from bot.config import LimitSettings, WeComSettings
from bot.engine import Engine
from bot.limits import Limits, SlidingWindow
from bot.outbox import Dispatcher, Outcome
from bot.scheduler import forget_old_records
from bot.services import top_gaps
from bot.storage.models import Conversation, InboxRecord, QuestionGap, Tip, utcnow
from bot.tips import alerts, ledger
from bot.types import Inbound
from bot.web.app import create_app
from tests.stored import conversation_of
from tests.test_web_chat import WebUser

OFF_TOPIC = "火星上的天气怎么样"


async def test_a_flooding_resident_is_asked_to_wait_and_keeps_the_draft(engine: Engine,
                                                                         web: httpx.AsyncClient) -> None:
    engine.services.limits.messages = SlidingWindow(5, 1.0)  # 5 a second instead of 30 a minute, to test quickly
    me = WebUser(web, "web-flood")
    await me.send("举报")
    await me.send("有人在镇上收钱入股合作社，说每月分红百分之三")
    answers = await asyncio.gather(*(web.post("/api/chat", json={"user": "web-flood", "text": "你好"})
                                     for _ in range(20)))
    assert {a.status_code for a in answers} == {200}
    slowed = [a for a in answers if "发得太快" in a.json()["replies"][0]["text"]]
    assert len(slowed) == 17  # 2 before, 3 more read, the rest asked to wait
    assert all("请过一分钟再发" in a.json()["replies"][0]["text"] for a in slowed)
    other = WebUser(web, "web-neighbour")  # another resident is not held up
    assert "防范非法集资小助手" in (await other.send("你好"))[0]["text"]
    await asyncio.sleep(1.1)
    await me.send("接着填")  # after the wait the report is where it was
    stored = await conversation_of(engine.services, "web", "web-flood")
    assert stored is not None and stored.row.flow == "report"
    assert stored.state["data"]["what"] == "有人在镇上收钱入股合作社，说每月分红百分之三"


async def test_staff_are_not_limited(engine: Engine) -> None:
    engine.services.limits.messages = SlidingWindow(2, 60)
    for _ in range(5):
        replies = await engine.handle(Inbound(channel="telegram", user="9", chat="9", text="/stats", role="admin"))
        assert "订阅人数" in replies[0].text


def test_x_forwarded_for_counts_only_from_a_configured_proxy() -> None:
    limits = Limits(LimitSettings(trusted_proxies=["10.0.0.0/8", "127.0.0.1"]))
    assert limits.client_address("203.0.113.7", "1.2.3.4") == "203.0.113.7"  # not a proxy: the header is ignored
    assert limits.client_address("127.0.0.1", "198.51.100.9") == "198.51.100.9"
    assert limits.client_address("10.1.1.1", "6.6.6.6, 198.51.100.9, 10.2.2.2") == "198.51.100.9"  # forged first hop
    assert limits.client_address("127.0.0.1", "not-an-address") == "127.0.0.1"
    assert limits.client_address("127.0.0.1", None) == "127.0.0.1"
    with pytest.raises(ValueError, match="not an IP"):
        LimitSettings(trusted_proxies=["example.com"])


def test_the_window_forgets_the_least_recent_senders_first() -> None:
    window = SlidingWindow(1, 60, max_keys=3)
    assert all(window.allow(k, now=0) for k in "abc")
    assert not window.allow("a", now=1)  # "a" is over and is now the most recently seen
    assert window.allow("d", now=2)  # a fourth sender: "b" is forgotten
    assert window.allow("b", now=3) and not window.allow("a", now=3)


async def test_unanswered_questions_are_counted_not_piled_up(engine: Engine) -> None:
    for _ in range(30):
        await engine.handle(Inbound(channel="web", user="web-curious", chat="web-curious", text="/ask " + OFF_TOPIC))
    long = "土星的光环是什么做的" * 30
    await engine.handle(Inbound(channel="web", user="web-long", chat="web-long", text="/ask " + long))
    phone = "/ask 土星的光环是什么做的，电话13912345678"
    await engine.handle(Inbound(channel="web", user="web-long", chat="web-long", text=phone))
    async with engine.services.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(QuestionGap)) == 3
        gaps = dict(await top_gaps(s, 10))
        texts = list(await s.scalars(select(QuestionGap.text)))
    assert gaps[OFF_TOPIC] == 30
    assert all(len(t) <= 200 for t in texts) and not any("13912345678" in t for t in texts)
    assert "土星的光环是什么做的,电话#" in texts


async def test_old_records_idle_conversations_and_stale_questions_are_forgotten(engine: Engine) -> None:
    services = engine.services
    await engine.handle(Inbound(channel="web", user="web-gone", chat="web-gone", text="/ask " + OFF_TOPIC))
    await engine.handle(Inbound(channel="web", user="web-here", chat="web-here", text="你好"))
    async with services.db.transaction() as s:
        s.add(InboxRecord(key="telegram:1:5", status="answered", created_at=utcnow() - timedelta(days=3)))
        s.add(InboxRecord(key="telegram:1:6", status="answered"))
        gone = await conversation_of(services, "web", "web-gone")
        assert gone is not None
        await s.execute(update(Conversation).where(Conversation.id == gone.row.id)
                        .values(updated_at=utcnow() - timedelta(days=services.settings.chat.retention_days + 1)))
        await s.execute(update(QuestionGap).values(last_seen=utcnow() - timedelta(days=400)))
    assert await forget_old_records(services) == 3
    assert await conversation_of(services, "web", "web-gone") is None
    assert await conversation_of(services, "web", "web-here") is not None
    async with services.db.session() as s:
        assert list(await s.scalars(select(InboxRecord.key))) == ["telegram:1:6"]
        assert await s.scalar(select(func.count()).select_from(QuestionGap)) == 0


def client_at(engine: Engine, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(engine), client=(address, 40000)),
                             base_url="http://fangfei.test")


async def test_a_flood_from_one_address_gets_429_with_a_reply_and_others_are_served(engine: Engine) -> None:
    """2,000 requests from one address, each with a fresh user id: the first 120 in the minute are read."""
    async with client_at(engine, "203.0.113.9") as flood, client_at(engine, "198.51.100.20") as neighbour:
        answers = []
        for batch in range(20):
            answers += await asyncio.gather(*(flood.post("/api/chat", json={"user": f"bot-{batch}-{i}", "text": "你好"})
                                              for i in range(100)))
        codes = [a.status_code for a in answers]
        assert codes.count(200) == 120 and codes.count(429) == 1880
        refused = answers[-1].json()
        assert "请过一分钟再发" in refused["replies"][0]["text"] and answers[-1].headers["retry-after"] == "60"
        assert (await neighbour.post("/api/chat", json={"user": "web-ok", "text": "你好"})).status_code == 200
        # a forged X-Forwarded-For from a client that is no proxy of ours changes nothing
        forged = await flood.post("/api/chat", json={"user": "x", "text": "你好"},
                                  headers={"X-Forwarded-For": "192.0.2.77"})
        assert forged.status_code == 429
    async with engine.services.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Conversation)) == 121  # refused requests stored nothing


async def test_a_tip_flood_from_one_address_files_five_and_keeps_the_rest_waiting(engine: Engine) -> None:
    """40 tips from 40 fresh web ids behind one proxy-forwarded address: 5 are filed (and alerted), the others
    wait at their summary; a resident at another address behind the same proxy files at once."""
    services = engine.services
    services.limits = Limits(LimitSettings(address_messages_per_minute=10**6))
    behind_proxy = {"X-Forwarded-For": "203.0.113.50"}
    async with client_at(engine, "127.0.0.1") as proxy:
        async def file_one(user: str, headers: dict[str, str]) -> str:
            async def send(text: str) -> str:
                res = await proxy.post("/api/chat", json={"user": user, "text": text}, headers=headers)
                assert res.status_code == 200
                return "\n".join(r["text"] for r in res.json()["replies"])
            await send("举报")
            await send(f"{user}：有人在村里收钱，说每月返利百分之五，拉人还给奖励")
            for _ in range(4):
                await send("跳过")
            await send("匿名")
            return await send("确认提交")

        results = [await file_one(f"web-junk-{i}", behind_proxy) for i in range(40)]
        assert sum("提交成功" in r for r in results) == 5
        assert all("请过一个小时再点“确认提交”" in r for r in results[5:])
        real = await file_one("web-real-resident", {"X-Forwarded-For": "198.51.100.77"})
        assert "提交成功" in real
    async with services.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Tip)) == 6
    held = await conversation_of(services, "web", "web-junk-39")
    assert held is not None and held.row.step == "summary"  # nothing lost: it can be submitted later


async def test_a_real_tips_alert_goes_ahead_of_a_flood_of_anonymous_web_tips(engine: Engine) -> None:
    """30 anonymous web tips are waiting for the staff group's robot (20 a minute) when a WeChat resident files
    one: theirs is the first the dispatcher sends."""
    services = engine.services
    settings = services.settings.model_copy(update={"wecom": WeComSettings(robot_webhook_url="http://robot.test")})
    postgres = not services.db.is_sqlite
    async with services.db.transaction() as session:
        for i in range(30):
            junk = await ledger.file(session, services.vault, "web", f"web-junk-{i}",
                                     ledger.Report(what=f"垃圾举报 {i}"), None, postgres)
            await alerts.announce(session, settings, junk, 0, postgres)
        real = await ledger.file(session, services.vault, "wechat", "o-real-resident",
                                 ledger.Report(what="村里有人收钱入股，每月返利百分之五"), None, postgres)
        await alerts.announce(session, settings, real, 0, postgres)
    sent: list[str] = []

    async def robot(target: str, payload: dict[str, object]) -> Outcome:
        sent.append(str(payload["markdown"]))
        return Outcome.sent()

    dispatcher = Dispatcher(services.db, {"wecom": robot}, batch=5)
    assert await dispatcher.run_once() == 5
    assert real.receipt in sent[0] and sum(real.receipt in m for m in sent) == 1
