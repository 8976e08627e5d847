"""Hostile input at every endpoint, on SQLite and PostgreSQL: generated JSON and bodies at /api/chat and the Telegram
webhook, generated signed (and in safe mode encrypted) XML at /wechat. Whatever arrives: never a 5xx, a valid message
right after is still answered, and input that was refused stored nothing."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any
from xml.sax.saxutils import escape

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from starlette.routing import Route

from bot.channels.telegram import TelegramChannel
from bot.channels.wechat import WeChatChannel
from bot.config import LimitSettings, TelegramSettings, WeChatSettings
from bot.engine import Engine
from bot.limits import Limits
from bot.storage.models import Conversation, InboxRecord, QuestionGap, Tip, WeChatUser
from bot.web.app import create_app
from tests.fake_telegram import FakeTelegram
from tests.wechat_client import ACCOUNT, AES_KEY, APP_ID, TOKEN, WeChatServer

SECRET = "hostile-input-secret"
RESIDENT = 4242
SORRY = "出了点问题"  # the engine failed: never the answer to what a client sent
TABLES = (Conversation, InboxRecord, WeChatUser, QuestionGap, Tip)
EXAMPLES = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def no_abuse_limits(engine: Engine) -> None:
    """Hundreds of generated requests from one address and a few users: these tests are about malformed input,
    not floods (tests/test_limits.py)."""
    engine.services.limits = Limits(LimitSettings(messages_per_minute=10**9, address_messages_per_minute=10**9))


async def stored(engine: Engine) -> list[int]:
    async with engine.services.db.session() as s:
        return [await s.scalar(select(func.count()).select_from(table)) or 0 for table in TABLES]


# -- generated input ---------------------------------------------------------------------------------------------
any_text = st.text(st.characters(exclude_categories=()), max_size=40)  # lone surrogates and NUL included
texts = any_text | st.sampled_from(["你好", "/start", "火车票怎么买", "\x00", "\ud800", "a\udfffb", "\u202e", " "])
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | texts,
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
                           max_leaves=12)
payloads = json_values | st.fixed_dictionaries({"user": json_values | texts, "text": json_values | texts},
                                               optional={"extra": json_values})
hostile_bodies = (st.binary(max_size=200)
                  | st.integers(1, 30_000).map(lambda n: b"[" * n + b"]" * n)
                  | st.integers(1, 30_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n)
                  | st.integers(4_000, 10_000).map(lambda n: b'{"user": "u", "text": "x", "n": ' + b"9" * n + b"}")
                  | st.sampled_from([b"", b"null", b"NaN", b'"\\ud800"', b'{"user": "u\\u0000", "text": "x"}']))
bodies = payloads.map(lambda value: json.dumps(value).encode()) | hostile_bodies
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
                                 "text/plain; charset=application/json", "application/jsonx", "", "text/xml"])


# -- /api/chat ---------------------------------------------------------------------------------------------------
@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(engine)),
                                 base_url="http://fangfei.test") as c:
        yield c


@EXAMPLES
@given(body=bodies, content_type=content_types)
async def test_web_chat_never_fails_on_generated_requests(client: httpx.AsyncClient, engine: Engine, body: bytes,
                                                          content_type: str) -> None:
    before = await stored(engine)
    res = await client.post("/api/chat", content=body, headers={"content-type": content_type})
    assert res.status_code < 500 and SORRY not in res.text, res.text
    if res.status_code >= 400:
        assert res.json()["error"] and await stored(engine) == before
    after = await client.post("/api/chat", json={"user": "after-hostile", "text": "你好"})
    assert after.status_code == 200 and "示例县" in after.json()["replies"][0]["text"]


# -- Telegram webhook --------------------------------------------------------------------------------------------
@pytest.fixture
async def webhook(engine: Engine, telegram: FakeTelegram) -> AsyncIterator[httpx.AsyncClient]:
    # one answer per example, well over a hundred a run: a rate whose bursts stay under Telegram's 30 a second
    settings = TelegramSettings(token=telegram.token, base_url=telegram.base_url, webhook_secret=SECRET,
                                webhook_url="https://bot.example.gov.cn/telegram/webhook", max_messages_per_second=14)
    channel = TelegramChannel(engine, settings)
    await channel.start()
    app = create_app(engine, [Route(settings.webhook_path, channel.webhook, methods=["POST"])])
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                     headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as c:
            yield c
    finally:
        await channel.stop()
    telegram.assert_no_violations()


async def answered_after(webhook: httpx.AsyncClient, telegram: FakeTelegram) -> None:
    """A valid update after whatever came before is still answered."""
    seen = len(telegram.messages_to(RESIDENT))
    res = await webhook.post("/telegram/webhook", json=telegram.user_message(RESIDENT, "/start", queue=False))
    assert res.status_code == 200
    await telegram.wait_for(lambda: any("防范非法集资小助手" in m["plain_text"]
                                        for m in telegram.messages_to(RESIDENT)[seen:]))


@settings(EXAMPLES, max_examples=60)  # each example waits for Telegram's answer, sent within its rate limit
@given(body=bodies)
async def test_telegram_webhook_never_fails_on_generated_bodies(webhook: httpx.AsyncClient, telegram: FakeTelegram,
                                                                engine: Engine, body: bytes) -> None:
    before = await stored(engine)
    res = await webhook.post("/telegram/webhook", content=body, headers={"content-type": "application/json"})
    assert res.status_code < 500
    if res.status_code >= 400:
        assert await stored(engine) == before
    await answered_after(webhook, telegram)


async def chunks(size: int) -> AsyncIterator[bytes]:
    """A body sent without Content-Length (chunked), as a client that does not say how much is coming."""
    yield b'{"update_id": 1, "pad": "'
    for _ in range(size // 65536):
        yield b"x" * 65536
    yield b'"}'


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_telegram_webhook_refuses_a_body_over_its_limit(webhook: httpx.AsyncClient, telegram: FakeTelegram,
                                                              engine: Engine) -> None:
    update = telegram.user_message(RESIDENT, "/start", queue=False)
    big = json.dumps({**update, "pad": "x" * 10_000_000}).encode()  # a valid update of 10 MB
    res = await webhook.post("/telegram/webhook", content=big, headers={"content-type": "application/json"})
    assert res.status_code == 413 and "larger than 1048576 bytes" in res.json()["error"]
    streamed = await webhook.post("/telegram/webhook", content=chunks(2 * 1024 * 1024))
    assert streamed.status_code == 413 and "content-length" not in streamed.request.headers
    assert telegram.messages_to(RESIDENT) == [] and await stored(engine) == [0] * len(TABLES)
    await answered_after(webhook, telegram)


# -- WeChat ------------------------------------------------------------------------------------------------------
FIELDS = ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId", "Event", "EventKey",
          "Recognition", "MediaId", "PicUrl", "Other"]
xml_text = (st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
            | st.sampled_from(["", "0", "12ab", "٣٤", "9" * 30, "o" * 129, "1" * 161, "CLICK", "VIEW", "subscribe",
                               "unsubscribe", "text", "event", "voice", "image", "check", "qrscene_" + "s" * 70,
                               "]]>", "<b>x</b>", "&amp;", "你好"]))
styles = st.sampled_from(["cdata", "escaped", "raw", "nested", "attribute", "empty"])
openids = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=40).map(lambda s: "o-" + s)


def element(name: str, value: str, style: str) -> str:
    return {"cdata": f"<{name}><![CDATA[{value}]]></{name}>", "escaped": f"<{name}>{escape(value)}</{name}>",
            "raw": f"<{name}>{value}</{name}>", "nested": f"<{name}><b>{escape(value)}</b></{name}>",
            "attribute": f'<{name} a="1">{escape(value)}</{name}>', "empty": f"<{name}/>"}[style]


@st.composite
def wechat_xml(draw: Any) -> str:
    """A message WeChat could send (text or event), then up to four fields set, repeated or dropped."""
    fields = [("ToUserName", ACCOUNT, "cdata"), ("FromUserName", draw(openids), "cdata"),
              ("CreateTime", str(int(time.time())), "raw")]
    if draw(st.booleans()):
        fields += [("MsgType", "text", "cdata"), ("Content", draw(xml_text), "cdata"),
                   ("MsgId", str(draw(st.integers(1, 2**63))), "raw")]
    else:
        fields += [("MsgType", "event", "cdata"),
                   ("Event", draw(st.sampled_from(["CLICK", "VIEW", "subscribe", "unsubscribe", "LOCATION"])), "cdata"),
                   ("EventKey", draw(xml_text), "cdata")]
    for op, name, value, style in draw(st.lists(st.tuples(st.sampled_from(["set", "repeat", "drop"]),
                                                          st.sampled_from(FIELDS), xml_text, styles), max_size=4)):
        if op != "repeat":
            fields = [f for f in fields if f[0] != name]
        if op != "drop":
            fields.append((name, value, style))
    return "<xml>" + "".join(element(*f) for f in fields) + "</xml>"


@pytest.fixture(params=["plain", "safe"])
async def wechat(request: pytest.FixtureRequest, engine: Engine) -> AsyncIterator[WeChatServer]:
    safe = request.param == "safe"
    settings = WeChatSettings(token=TOKEN, encoding_aes_key=AES_KEY if safe else "", app_id=APP_ID,
                              app_secret="secret", api_base_url="http://127.0.0.1:9")
    channel = WeChatChannel(engine, settings)
    app = create_app(engine, channel.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://oa.test") as client:
        yield WeChatServer(client, safe=safe)
    await channel.close()


@EXAMPLES
@given(xml=wechat_xml())
async def test_wechat_never_fails_on_generated_signed_xml(wechat: WeChatServer, engine: Engine, xml: str) -> None:
    before = await stored(engine)
    res = await wechat.post(xml)
    assert res.status_code < 500, res.text
    if res.status_code >= 400:
        assert await stored(engine) == before
    else:
        assert SORRY not in wechat.reply_text(res)
    assert "防范" in await wechat.say("o-after-hostile", "你好")


async def test_a_wechat_account_id_that_would_break_the_reply_xml_is_refused(wechat: WeChatServer,
                                                                                engine: Engine) -> None:
    # found by the generated test: "]]>" in ToUserName, echoed into the reply's CDATA, made it unreadable
    before = await stored(engine)
    for bad in ("]]&gt;", "gh_x]]&gt;&lt;x", "o a"):
        xml = (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName>{bad}</FromUserName>"
               "<CreateTime>1796282426</CreateTime><MsgType><![CDATA[text]]></MsgType>"
               "<Content><![CDATA[你好]]></Content><MsgId>1</MsgId></xml>")
        for swapped in (xml, xml.replace(f"<![CDATA[{ACCOUNT}]]>", bad).replace(f"<FromUserName>{bad}",
                                                                                  "<FromUserName>o-x")):
            res = await wechat.post(swapped)
            assert res.status_code == 400 and "account ids" in res.text
    assert await stored(engine) == before
