"""WeChat Official Account end to end: requests signed and encrypted with wechatpy, posted to the running app."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from bot.channels.wechat import WeChatChannel, render
from bot.config import WeChatSettings
from bot.engine import Engine
from bot.storage.models import Conversation, InboxRecord, QuestionGap, Subscriber, WeChatUser
from bot.types import Option, Reply
from bot.web.app import create_app
from tests.postgres import connect
from tests.wechat_client import AES_KEY, APP_ID, TOKEN, WeChatServer, event_xml, image_xml, text_xml, voice_xml


def wechat_settings(safe: bool, **extra: object) -> WeChatSettings:
    return WeChatSettings(token=TOKEN, encoding_aes_key=AES_KEY if safe else "", app_id=APP_ID,
                          app_secret="secret", api_base_url="http://127.0.0.1:9", **extra)  # type: ignore[arg-type]


@pytest.fixture(params=["plain", "safe"])
async def wechat(request: pytest.FixtureRequest, engine: Engine) -> AsyncIterator[WeChatServer]:
    channel = WeChatChannel(engine, wechat_settings(request.param == "safe"))
    app = create_app(engine, channel.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://oa.test") as client:
        yield WeChatServer(client, safe=request.param == "safe")
    await channel.close()


async def test_url_verification(wechat: WeChatServer) -> None:
    ok = await wechat.client.get("/wechat", params={**wechat.params(), "echostr": "echo-123"})
    assert ok.status_code == 200 and ok.text == "echo-123"
    forged = await wechat.client.get("/wechat", params={**wechat.params(forged=True), "echostr": "x"})
    assert forged.status_code == 403


async def test_a_residents_conversation_by_numbered_menu(wechat: WeChatServer, engine: Engine) -> None:
    welcome = await wechat.say("o-res-1", "你好")
    assert "防范非法集资小助手" in welcome and "回复 2：风险自测" in welcome
    prompt = await wechat.say("o-res-1", "2")
    assert "怎么说的" in prompt
    report = await wechat.say("o-res-1", "他说每月返利百分之八，拉人还有奖励")
    assert "风险很高" in report and "回复 1：" in report
    assert "12345" in report
    entry = await wechat.say("o-res-1", "1")
    assert entry.startswith("【") and "回复 1：详细说说" in entry
    details = await wechat.say("o-res-1", "1")
    assert "常见套路" in details and "怎么识别" in details
    assert "想看法律怎么规定，请回复数字 3" in details and "回复 3：法律依据" in details
    beyond = await wechat.say("o-res-1", "9")  # five options: not "expired", but which numbers there are (issue 15)
    assert "过期" not in beyond and "没有 9 这一项" in beyond and "请回复数字 1 到 5" in beyond
    assert "回复 5：回主菜单" in beyond and "请点" not in beyond
    assert "回复 1：问问题" in await wechat.say("o-res-1", "5")  # the menu shown again still works
    sub = await wechat.say("o-res-1", "订阅提醒")
    assert "回复 1：老年人" in sub
    await wechat.say("o-res-1", "1")
    await wechat.say("o-res-1", "2")  # 河口乡
    done = await wechat.say("o-res-1", "1")  # 河口村
    assert "订阅好了（老年人 · 河口乡 河口村）" in done
    answer = await wechat.say("o-res-1", "消费全返是真的吗")
    assert "消费全返" in answer


async def test_the_same_msgid_three_times_at_once_gets_one_answer(wechat: WeChatServer, engine: Engine) -> None:
    xml = text_xml("o-dup", "消费全返是真的吗", msg_id=424242)
    results = await asyncio.gather(*(wechat.post(xml) for _ in range(3)))
    texts = [wechat.reply_text(r) for r in results]
    answered = [t for t in texts if t]
    assert answered and all(t == answered[0] for t in answered)  # the same answer or an empty one
    async with engine.services.db.session() as s:
        rows = (await s.scalars(select(InboxRecord).where(InboxRecord.key == "424242"))).all()
        assert len(rows) == 1 and rows[0].status == "answered"
    # a later retry gets the stored answer
    assert wechat.reply_text(await wechat.post(xml)) == answered[0]


async def test_an_unanswered_question_sent_three_times_at_once_is_recorded_once(wechat: WeChatServer,
                                                                                 engine: Engine) -> None:
    xml = text_xml("o-gap", "火车票怎么买", msg_id=454545)
    texts = [wechat.reply_text(r) for r in await asyncio.gather(*(wechat.post(xml) for _ in range(3)))]
    assert [t for t in texts if t] and all("答不上来" in t for t in texts if t)
    async with engine.services.db.session() as s:  # for the editors' `kb gaps`: once, not once per delivery
        assert await s.scalar(select(func.coalesce(func.sum(QuestionGap.count), 0))) == 1


async def test_a_repeated_choice_moves_the_conversation_only_once(wechat: WeChatServer) -> None:
    assert "回复 1：老年人" in await wechat.say("o-dup2", "订阅提醒")
    choice = text_xml("o-dup2", "1", msg_id=434343)  # 老年人; handled twice it would also pick township 1
    texts = [wechat.reply_text(r) for r in await asyncio.gather(*(wechat.post(choice) for _ in range(3)))]
    answered = [t for t in texts if t]
    assert answered and all(t == answered[0] for t in answered) and "乡镇" in answered[0]
    # the resident is still choosing a township: handled twice, "1" would already have picked 城关镇
    assert "您在河口乡的哪个村" in await wechat.say("o-dup2", "2")


async def test_a_database_restart_costs_no_answer(wechat: WeChatServer, engine: Engine) -> None:
    """Every pooled connection dies (as in a PostgreSQL restart): the next message is still answered, once."""
    if engine.services.db.is_sqlite:
        pytest.skip("PostgreSQL connections only")
    assert "回复 2：风险自测" in await wechat.say("o-restart", "你好")
    killer = await connect(engine)
    try:
        killed = await killer.fetchval("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                       " WHERE datname = current_database() AND pid <> pg_backend_pid()")
    finally:
        await killer.close()
    assert killed >= 1
    xml = text_xml("o-restart", "2", msg_id=616161)
    assert "怎么说的" in wechat.reply_text(await wechat.post(xml))  # the menu choice, on a fresh connection
    assert "风险很高" in await wechat.say("o-restart", "他说每月返利百分之八，拉人还有奖励")
    async with engine.services.db.session() as s:
        assert (await s.scalar(select(InboxRecord.status).where(InboxRecord.key == "616161"))) == "answered"


async def test_forged_or_stale_signatures_are_refused(wechat: WeChatServer, engine: Engine) -> None:
    xml = text_xml("o-forged", "你好", msg_id=5151)
    assert (await wechat.post(xml, forged=True)).status_code == 403
    assert (await wechat.post(xml, timestamp=int(time.time()) - 600)).status_code == 403
    async with engine.services.db.session() as s:
        assert await s.get(InboxRecord, "5151") is None  # nothing processed


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">'
                  '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]><xml><ToUserName>a</ToUserName>'
                  '<FromUserName>o-x</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType>'
                  '<Content>&lol3;</Content><MsgId>1</MsgId></xml>')
XXE = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml>'
       '<ToUserName>a</ToUserName><FromUserName>o-x</FromUserName><CreateTime>1</CreateTime>'
       '<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>2</MsgId></xml>')


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE, "<xml><unclosed>", "not xml at all", "",
                                  "<xml><MsgType>text</MsgType></xml>"])
async def test_hostile_or_malformed_bodies_get_a_clean_4xx(wechat: WeChatServer, body: str) -> None:
    res = await wechat.post(body)
    assert 400 <= res.status_code < 500 and "Traceback" not in res.text and "root:" not in res.text
    if wechat.safe:  # the same body as the encrypted envelope itself, refused before anything is decrypted
        raw = await wechat.client.post(wechat.path, content=body.encode(), headers={"content-type": "text/xml"},
                                       params={**wechat.params(), "encrypt_type": "aes", "msg_signature": "0" * 40})
        assert 400 <= raw.status_code < 500 and "Traceback" not in raw.text
    assert "防范" in await wechat.say("o-after", "你好")  # still serving


def _text(openid: str = "o-bad", msg_id: str = "7000001", created: str | None = None) -> str:
    return text_xml(openid, "火车票怎么买", msg_id=msg_id, created=created)


# each of these was a 500, or the apology after the engine failed on it
REFUSED = {
    "non-numeric MsgId": (lambda: _text(msg_id="12ab"), "MsgId"),
    "MsgId of 161 digits": (lambda: _text(msg_id="1" * 161), "MsgId"),
    "event with a non-numeric CreateTime": (lambda: event_xml("o-bad", "CLICK", "check", created="soon"), "CreateTime"),
    "CreateTime past any date": (lambda: _text(created="9" * 30), "CreateTime"),
    "an element inside Content": (lambda: _text().replace("<Content><![CDATA[火车票怎么买]]></Content>",
                                                          "<Content><b>火车票怎么买</b></Content>"), "Content"),
    "Content twice": (lambda: _text().replace("<MsgId>", "<Content>火车票怎么买</Content><MsgId>"), "Content"),
    "FromUserName twice": (lambda: _text().replace("<CreateTime>", "<FromUserName>o-bad2</FromUserName><CreateTime>"),
                           "FromUserName"),
    "an openid of 129 characters": (lambda: _text(openid="o" * 129), "FromUserName"),
    "no FromUserName": (lambda: _text().replace("<FromUserName><![CDATA[o-bad]]></FromUserName>", ""),
                        "FromUserName"),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_messages_wechat_never_sends_are_refused_with_a_reason(wechat: WeChatServer, engine: Engine,
                                                                      caplog: pytest.LogCaptureFixture,
                                                                      case: str) -> None:
    build, field = REFUSED[case]
    with caplog.at_level(logging.INFO):
        res = await wechat.post(build())
    assert res.status_code == 400 and field in res.text, res.text
    refusals = [r for r in caplog.records if r.name == "bot.channels.wechat" and r.levelno == logging.WARNING]
    assert refusals and all(field in r.getMessage() for r in refusals)
    assert "o-bad" not in caplog.text and "火车票" not in caplog.text and "ooooo" not in caplog.text
    async with engine.services.db.session() as s:  # nothing handled, nothing stored
        for table in (InboxRecord, Conversation, QuestionGap):
            assert await s.scalar(select(func.count()).select_from(table)) == 0
    assert "防范" in await wechat.say("o-after", "你好")  # still serving


async def test_an_events_exactly_once_key_holds_no_openid(wechat: WeChatServer, engine: Engine) -> None:
    openid = "o-private-clicker"
    click = event_xml(openid, "CLICK", "check", created=int(time.time()))
    first = wechat.reply_text(await wechat.post(click))
    assert "怎么说的" in first
    assert wechat.reply_text(await wechat.post(click)) == first  # WeChat's retry: the stored answer, not a new turn
    async with engine.services.db.session() as s:
        rows = (await s.scalars(select(InboxRecord))).all()
    assert len(rows) == 1 and rows[0].reply == first
    assert not [r for r in rows if openid in f"{r.key} {r.reply} {r.status}"]
    assert len(rows[0].key) == 64 and int(rows[0].key, 16) >= 0  # a fingerprint: 64 hex digits


async def test_oversized_body_is_refused(wechat: WeChatServer) -> None:
    res = await wechat.post(text_xml("o-big", "长" * 30000))
    assert res.status_code == 413


async def test_unknown_message_types_get_a_kind_reply(wechat: WeChatServer) -> None:
    xml = text_xml("o-odd", "x").replace("<![CDATA[text]]>", "<![CDATA[miniprogrampage]]>")
    res = await wechat.post(xml)
    assert res.status_code == 200 and "看不懂" in wechat.reply_text(res)


async def test_subscribe_with_scene_unsubscribe_click_and_view(wechat: WeChatServer, engine: Engine) -> None:
    welcome = wechat.reply_text(await wechat.post(event_xml("o-new", "subscribe", "qrscene_lijiacun")))
    assert "防范非法集资小助手" in welcome
    async with engine.services.db.session() as s:
        user = await s.get(WeChatUser, "o-new")
        assert user is not None and user.source == "lijiacun" and user.following
    click = wechat.reply_text(await wechat.post(event_xml("o-new", "CLICK", "check")))
    assert "怎么说的" in click
    view = await wechat.post(event_xml("o-new", "VIEW", "https://example.invalid/"))
    assert view.text == "success"
    await wechat.say("o-new", "订阅")
    await wechat.say("o-new", "3")
    await wechat.say("o-new", "4")  # skip township
    bye = await wechat.post(event_xml("o-new", "unsubscribe"))
    assert bye.text == "success"
    async with engine.services.db.session() as s:
        user = await s.get(WeChatUser, "o-new")
        sub = await s.scalar(select(Subscriber).where(Subscriber.user_id == "o-new"))
        assert user is not None and not user.following and sub is not None and not sub.active


async def test_voice_with_and_without_recognition_and_images(wechat: WeChatServer) -> None:
    heard = wechat.reply_text(await wechat.post(voice_xml("o-voice", "消费全返是真的吗")))
    assert "消费全返" in heard
    unheard = wechat.reply_text(await wechat.post(voice_xml("o-voice", "")))
    assert "没听清" in unheard and "回复 1：问问题" in unheard
    picture = wechat.reply_text(await wechat.post(image_xml("o-voice")))
    assert "图片" in picture


def test_render_numbers_options_and_respects_the_size_limit() -> None:
    texts = render([Reply("你好"), Reply("请选择", (Option("问问题", "~a.0"), Option("风险自测", "~a.1")))])
    assert texts == ["你好\n\n请选择\n回复 1：问问题\n回复 2：风险自测"]
    long = render([Reply("长" * 1500)])
    assert len(long) == 3 and all(len(t.encode()) <= 2000 for t in long)  # 4,500 bytes and "".join(long) == "长" * 1500
