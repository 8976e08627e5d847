"""A resident's conversations through POST /api/chat, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bot.engine import Engine
from bot.storage import conversations
from bot.storage.conversations import key_of
from bot.storage.models import Conversation, QuestionGap, Subscriber
from bot.web.app import create_app
from tests.postgres import connect, waiting_for_locks
from tests.stored import conversation_of


class WebUser:
    """A resident using the web chat: sends text, taps options by label, remembers the last replies."""

    def __init__(self, client: httpx.AsyncClient, user: str) -> None:
        self.client, self.user = client, user
        self.replies: list[dict[str, Any]] = []

    async def send(self, text: str) -> list[dict[str, Any]]:
        res = await self.client.post("/api/chat", json={"user": self.user, "text": text})
        assert res.status_code == 200, res.text
        self.replies = res.json()["replies"]
        assert self.replies, f"no reply to {text!r}"
        return self.replies

    def options(self) -> dict[str, str]:
        return {o["label"]: o["value"] for r in self.replies for o in r["options"]}

    async def tap(self, label_start: str) -> list[dict[str, Any]]:
        matches = [v for label, v in self.options().items() if label.startswith(label_start)]
        assert matches, f"no option starting {label_start!r} in {list(self.options())}"
        return await self.send(matches[0])

    @property
    def text(self) -> str:
        return "\n".join(r["text"] for r in self.replies)


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://fangfei.test") as c:
        yield c


async def test_full_resident_conversation(client: httpx.AsyncClient, engine: Engine) -> None:
    me = WebUser(client, "resident-1")
    await me.send("/start")
    assert "示例县" in me.text
    assert list(me.options()) == ["问问题", "风险自测", "知识答题", "我要举报", "查询举报", "订阅提醒"]

    # ask: summary first, then the details on request, then a related entry
    await me.tap("问问题")
    assert "发给我" in me.text
    await me.send("养老院让交钱订床位，每年还给利息，靠谱吗")
    assert me.text.startswith("【")
    assert "详细说说" in me.options()
    assert any(label.startswith("相关：") for label in me.options())
    await me.tap("详细说说")
    assert len(me.replies) == 3
    assert "常见套路" in me.replies[0]["text"] and "怎么识别" in me.replies[1]["text"]
    assert "怎么办" in me.replies[2]["text"] and "12345" in me.replies[2]["text"]
    assert "（依据：" not in me.replies[2]["text"], "the statutes come on request, not after the advice"
    assert "{" not in me.text, "placeholders must be filled from config"
    await me.tap("法律依据")
    assert "法律依据" in me.replies[0]["text"] and "·" in me.replies[0]["text"]
    assert "举报" in me.replies[-1]["text"] and "我要举报" in me.options()
    await me.tap("回主菜单")
    await me.tap("问问题")
    await me.send("养老院让交钱订床位，每年还给利息，靠谱吗")
    await me.tap("详细说说")
    await me.tap("相关：")
    assert me.text.startswith("【")

    # risk check from the menu
    await me.tap("回主菜单")
    await me.tap("风险自测")
    await me.send("有人推荐我投资养老院，每年返息百分之十二，到期还本，拉人还有奖励")
    assert "风险很高" in me.replies[0]["text"]
    assert "利诱性" in me.replies[0]["text"]
    assert "{hotline}" not in me.text and "12345" in me.text
    assert "我要举报" in me.options() and "了解这类骗局：以养老服务为名" in me.options()
    await me.tap("了解这类骗局：")  # the entry on pension schemes that best fits what they were told
    assert me.text.startswith("【") and "养老" in me.text and "详细说说" in me.options()
    await me.tap("回主菜单")
    await me.tap("风险自测")
    await me.send("我去社区医院量了血压")  # nothing of fundraising: said once, then what to keep in mind
    assert "没看出" in me.replies[0]["text"] and "没看出" not in me.replies[1]["text"], me.text
    assert "12345" in me.replies[1]["text"] and "再测一个" in me.options()

    # subscribe with a profile from the region's list, then unsubscribe
    await me.tap("回主菜单")
    await me.tap("订阅提醒")
    await me.tap("老年人")
    assert "城关镇" in me.options()
    await me.tap("河口乡")
    await me.tap("李家村")
    assert "订阅好了" in me.text and "李家村" in me.text
    async with engine.services.db.session() as s:
        sub = await s.scalar(select(Subscriber).where(Subscriber.user_id == "resident-1"))
        assert sub is not None and (sub.audience, sub.township, sub.village, sub.active) == (
            "elderly", "河口乡", "李家村", True)
    await me.send("订阅提醒")
    assert "已经订阅" in me.text
    await me.send("退订")
    assert "已经退订" in me.text
    async with engine.services.db.session() as s:
        assert (await s.scalar(select(Subscriber.active).where(Subscriber.user_id == "resident-1"))) is False


async def test_free_text_goes_to_check_or_ask_by_what_it_is(client: httpx.AsyncClient) -> None:
    me = WebUser(client, "resident-2")
    await me.send("他说每月返利8%，拉人还有奖励，让我先交三千会员费")
    assert "风险" in me.replies[0]["text"]
    await me.send("非法集资的四个特征是什么")
    assert me.text.startswith("【") and "特征" in me.text


async def test_no_match_is_honest_offers_menu_and_hotline_and_is_recorded(client: httpx.AsyncClient,
                                                                         engine: Engine) -> None:
    me = WebUser(client, "resident-3")
    await me.send("火车票怎么买")
    assert "答不上来" in me.text and "12345" in me.text
    assert "问问题" in me.options()
    assert me.text.endswith("有人让您交钱的，先别交，打 12345 问问。"), "it ends with an action, not the menu"
    await WebUser(client, "resident-4").send("火车票怎么买")
    async with engine.services.db.session() as s:
        assert await s.scalar(select(func.coalesce(func.sum(QuestionGap.count), 0))) == 2


async def test_a_near_miss_offers_the_closest_answer_to_pick(client: httpx.AsyncClient, engine: Engine) -> None:
    """Not sure enough to answer "钱要不回来了", close enough to ask: the honest no-match offers the answer it came
    close to; the resident picks it or rephrases. Nothing is offered for an everyday question."""
    services = engine.services
    result = services.search("钱要不回来了")
    best = result.best
    assert not result.matched and best is not None
    assert best.score >= services.settings.search.suggest_threshold and best.entry.category == "victim-next-steps"
    me = WebUser(client, "resident-3s")
    await me.send("/start")
    await me.tap("问问题")
    await me.send("钱要不回来了")
    assert "答不上来" in me.text and "是不是这件事" in me.text and me.text.endswith("问问。")
    assert best.entry.title in me.options() and "回主菜单" in me.options()
    await me.tap(best.entry.title)
    assert f"【{best.entry.title}】" in me.text
    await me.tap("回主菜单")
    await me.tap("问问题")
    await me.send("火车票怎么买")
    assert "是不是这件事" not in me.text and "问问题" in me.options()
    async with services.db.session() as s:  # the near miss is still counted for the editors
        assert await s.scalar(select(func.coalesce(func.sum(QuestionGap.count), 0))) == 2


@pytest.mark.parametrize("vague", ["这个靠谱吗", "真的假的", "靠谱不？"])
async def test_a_question_with_nothing_to_look_up_is_asked_back(client: httpx.AsyncClient, vague: str) -> None:
    """No word says what it is about: the bot asks which matter, and the next message is the question."""
    me = WebUser(client, "resident-vague")
    await me.send("/start")
    await me.tap("问问题")
    await me.send(vague)
    assert "哪件事" in me.text and "答不上来" not in me.text
    await me.send("养老公寓让交十万订床位，靠谱吗")
    assert "【" in me.text and "床位" in me.text


@pytest.mark.parametrize("typed", ["我要报案", "报警！", "怎么报警？"])
async def test_a_resident_who_wants_the_police_gets_the_police_first(client: httpx.AsyncClient, engine: Engine,
                                                                      typed: str) -> None:
    """The search refused these short messages (they are rarely about fundraising alone): they are a victim's
    words, answered with the police number, what to bring, and the tip line."""
    region = engine.services.settings.region
    me = WebUser(client, "resident-police")
    await me.send(typed)
    assert region.police in me.replies[0]["text"] and "转账" in me.text and region.office_phone in me.text
    assert "答不上来" not in me.text and "我要举报" in me.options()
    await me.tap("我要举报")
    assert "第1步" in me.text


@pytest.mark.parametrize("typed", ["怎么举报？", "如何举报", "去哪举报"])
async def test_asking_how_to_report_starts_the_report(client: httpx.AsyncClient, typed: str) -> None:
    me = WebUser(client, "resident-how")
    await me.send(typed)
    assert "第1步" in me.text and "答不上来" not in me.text


async def test_stale_and_foreign_options_expire_politely(client: httpx.AsyncClient) -> None:
    me = WebUser(client, "resident-5")
    await me.send("/start")
    old = me.options()["风险自测"]
    await me.send("菜单")  # a new menu replaces the old one
    await me.send(old)
    assert "过期" in me.text and "问问题" in me.options()
    other = WebUser(client, "resident-6")
    await other.send("/start")
    await other.send(me.options()["问问题"])  # somebody else's button
    assert "过期" in other.text
    await me.send("~ZZZZZZ.3")
    assert "过期" in me.text


async def test_typed_label_selects_the_option(client: httpx.AsyncClient) -> None:
    me = WebUser(client, "resident-7")
    await me.send("/start")
    await me.send("风险自测")
    assert "怎么说的" in me.text


@pytest.mark.parametrize("typed", ["“回主菜单”", "「回主菜单」。", "\"你是谁\"？"])
async def test_keywords_typed_with_quotes_are_understood(client: httpx.AsyncClient, typed: str) -> None:
    """Issue 15 §2: a keyword typed with the quotes an instruction put around it, where no menu offers it."""
    me = WebUser(client, "resident-7q")
    await me.send("/start")  # the main menu: no "回主菜单" among its options
    await me.send(typed)
    assert "答不上来" not in me.text and "问问题" in me.options(), me.text


@pytest.mark.parametrize("text", ["", "   ", "😀😀😀", "\x00\x01\x1b[31m", "。。。！！"])
async def test_empty_or_meaningless_input_gets_a_clear_reply(client: httpx.AsyncClient, text: str) -> None:
    me = WebUser(client, "resident-8")
    await me.send(text)
    assert "没看懂" in me.text and me.options()


async def test_very_long_message_is_cut_and_answered(client: httpx.AsyncClient) -> None:
    me = WebUser(client, "resident-9")
    await me.send("每天返利百分之一，拉人有奖励。" * 700)  # ~10,000 characters
    assert "太长" in me.replies[0]["text"]
    assert len(me.replies) >= 2


@pytest.mark.parametrize(("body", "content_type", "status", "reason"), [
    (b"{not json", "application/json", 400, "not valid UTF-8 JSON"),
    (b"[1, 2]", "application/json", 400, "JSON object"),
    (b'{"user": "", "text": "hi"}', "application/json", 400, '"user"'),
    (b'{"user": "a", "text": 5}', "application/json", 400, '"text"'),
    (b'{"user": "a"}', "application/json", 400, '"text"'),
    (b'{"user": "a", "text": "hi"}', "text/plain", 415, "Content-Type"),
    (b"\xff\xfe", "application/json", 400, "UTF-8"),
    (b'{"user": "a", "text": "' + b"x" * 70000 + b'"}', "application/json", 413, "larger"),
    # each of these was a 500
    (b'{"user": "a", "text": "hi", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", "application/json", 400, "nested"),
    (b'{"user": "a", "text": "hi", "n": ' + b"7" * 5000 + b"}", "application/json", 400, "digits"),
    (b'{"user": "a", "text": "\\ud800"}', "application/json", 400, '"text"'),
    (b'{"user": "a\\ud800", "text": "hi"}', "application/json", 400, '"user"'),
    (b'{"user": "a\\u0000b", "text": "hi"}', "application/json", 400, '"user"'),
    (b'{"user": "a\\u001bb", "text": "hi"}', "application/json", 400, "control characters"),
    (b'{"user": "a", "text": "hi"}', "text/plain; charset=application/json", 415, "Content-Type"),
    (b'{"user": "a", "text": "hi"}', "application/jsonp", 415, "Content-Type"),
])
async def test_malformed_requests_get_a_400_with_a_reason(client: httpx.AsyncClient, body: bytes, content_type: str,
                                                          status: int, reason: str) -> None:
    res = await client.post("/api/chat", content=body, headers={"content-type": content_type})
    assert res.status_code == status
    assert reason in res.json()["error"]
    ok = await client.post("/api/chat", json={"user": "after-bad", "text": "你好"})
    assert ok.status_code == 200  # still serving


async def test_json_with_parameters_in_its_content_type_is_read(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/chat", content='{"user": "params", "text": "你好"}'.encode(),
                            headers={"content-type": "Application/JSON; charset=utf-8"})
    assert res.status_code == 200 and "示例县" in res.json()["replies"][0]["text"]


async def test_refused_input_stores_nothing(client: httpx.AsyncClient, engine: Engine) -> None:
    for body in ('{"user": "a\\u0000", "text": "火车票怎么买"}', '{"user": "a", "text": "火车票\\udfff"}'):
        res = await client.post("/api/chat", content=body.encode(), headers={"content-type": "application/json"})
        assert res.status_code == 400
    async with engine.services.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Conversation)) == 0
        assert await s.scalar(select(func.count()).select_from(QuestionGap)) == 0


async def test_pages_carry_security_headers_and_load_only_our_own_files(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in page.text and "<style>" not in page.text  # nothing inline for the CSP to block
    script = await client.get("/static/chat.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "api/chat" in script.text and script.headers["x-content-type-options"] == "nosniff"
    style = await client.get("/static/chat.css")
    assert style.status_code == 200 and "text/css" in style.headers["content-type"]
    api = await client.post("/api/chat", json={"user": "headers", "text": "你好"})
    assert api.headers["x-content-type-options"] == "nosniff" and "content-security-policy" not in api.headers


async def test_no_cross_origin_access_is_granted(client: httpx.AsyncClient) -> None:
    origin = {"origin": "https://evil.example"}
    preflight = await client.options("/api/chat", headers={**origin, "access-control-request-method": "POST"})
    responses = [preflight, await client.get("/", headers=origin),
                 await client.post("/api/chat", json={"user": "cors", "text": "你好"}, headers=origin)]
    for res in responses:
        assert res.status_code < 500 and not [h for h in res.headers if h.startswith("access-control-")]


async def test_health_and_page(client: httpx.AsyncClient) -> None:
    res = await client.get("/healthz")
    assert res.status_code == 200 and res.json()["status"] == "ok"
    page = await client.get("/")
    assert page.status_code == 200 and "static/chat.js" in page.text and "viewport" in page.text


async def test_conversation_survives_a_restart(engine: Engine, client: httpx.AsyncClient) -> None:
    me = WebUser(client, "resident-10")
    await me.send("/start")
    await me.tap("风险自测")
    # a new engine (a restarted process) on the same database continues the flow
    fresh = Engine(engine.services)
    transport = httpx.ASGITransport(app=create_app(fresh))
    async with httpx.AsyncClient(transport=transport, base_url="http://fangfei.test") as c2:
        again = WebUser(c2, "resident-10")
        await again.send("他说买纪念币三个月后高价回收")
        assert "风险" in again.replies[0]["text"]


async def test_messages_sent_at_once_are_each_answered_and_none_is_written_over(engine: Engine,
                                                                                client: httpx.AsyncClient) -> None:
    """A resident taps fast: twelve messages arrive together. Each is answered from the state the one before it
    left (never the apology), and each one's write is kept: the conversation moved twelve times, not fewer."""
    replies = await asyncio.gather(*(client.post("/api/chat", json={"user": "resident-fast", "text": "你好"})
                                     for _ in range(12)))
    texts = [r.json()["replies"][0]["text"] for r in replies]
    assert all(r.status_code == 200 for r in replies)
    assert not [t for t in texts if "出了点问题" in t] and all("示例县" in t for t in texts)
    stored = await conversation_of(engine.services, "web", "resident-fast")
    # each answer showed a new menu: twelve writes, none lost to another
    assert stored is not None and stored.row.version == 12


async def test_a_notice_left_while_a_message_is_answered_is_told_not_lost(engine: Engine,
                                                                          client: httpx.AsyncClient) -> None:
    """Staff change a tip while the reporter's next message is being answered: the answer was worked out from the
    conversation as it was, so it is worked out again, with the news, instead of writing over it."""
    if engine.services.db.is_sqlite:
        pytest.skip("PostgreSQL: SQLite lets one writer in at a time")
    me = WebUser(client, "resident-news")
    await me.send("你好")
    news = "您的线索 FF-2026-000123 已转交相关部门。"
    async with engine.services.db.session() as staff:
        await conversations.leave_notice(staff, engine.services.vault, "web", "resident-news", news, postgres=True)
        message = asyncio.create_task(me.send("帮助"))
        await waiting_for_locks(engine)  # the message's write waits for the staff transaction
        await staff.commit()
    await message
    assert me.replies[0]["text"] == news and "怎么用我" in me.text  # the news first, then what was asked
    stored = await conversation_of(engine.services, "web", "resident-news")
    assert stored is not None and stored.notice is None  # told once


async def test_a_deadlock_with_another_writer_costs_no_answer(engine: Engine, client: httpx.AsyncClient) -> None:
    """A resident unsubscribes (their subscription row, then their conversation) while another writer holds the
    conversation and then wants the subscription: PostgreSQL breaks the deadlock by failing the resident's message,
    which is answered again once the other writer is through, not met with the apology."""
    if engine.services.db.is_sqlite:
        pytest.skip("PostgreSQL: SQLite lets one writer in at a time")
    me = WebUser(client, "resident-deadlock")
    await me.send("你好")
    async with engine.services.db.transaction() as session:
        session.add(Subscriber(channel="web", user_id="resident-deadlock", audience="elderly", active=True))
    other = await connect(engine)
    try:
        async with other.transaction():
            await other.execute("SELECT 1 FROM conversations WHERE user_id = $1 FOR UPDATE",
                                key_of(engine.services.vault, "web", "resident-deadlock"))
            message = asyncio.create_task(me.send("退订"))
            await waiting_for_locks(engine)  # the resident's turn holds the subscription row
            await other.execute("SELECT 1 FROM subscribers WHERE user_id = 'resident-deadlock' FOR UPDATE")
        await message
    finally:
        await other.close()
    assert "已经退订了" in me.text
    async with engine.services.db.session() as session:
        assert await session.scalar(select(Subscriber.active).where(Subscriber.user_id == "resident-deadlock")) is False
