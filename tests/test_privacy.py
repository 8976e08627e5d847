"""A reporter cannot be tied to a tip without the secret key.

Named and anonymous tips are filed on every channel (web chat, local chat, Telegram through the fake Bot API, WeChat
through signed XML), a draft is left half-way on each, staff change every tip's status (the CLI's service), and
then everything the database holds is read as an attacker with a copy of it would: every table, the SQLite file's
raw bytes with its write-ahead log, or `pg_dump`. No reporter's platform id, name, phone or unfinished draft appears
anywhere, notices and menus naming receipts are sealed, and the keyed fingerprints do not join across tables.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from bot.channels import local
from bot.channels.telegram import TelegramChannel
from bot.channels.wechat import WeChatChannel
from bot.config import Settings, TelegramSettings
from bot.engine import Engine
from bot.storage.conversations import key_of
from bot.storage.database import Database
from bot.storage.models import Base, Conversation, Tip
from bot.tips import ledger
from bot.types import Inbound
from bot.web.app import create_app
from handlers.report import tell_status
from tests.fake_telegram import FakeTelegram
from tests.stored import conversation_of
from tests.test_telegram import press, say
from tests.test_web_chat import WebUser
from tests.test_wechat import wechat_settings
from tests.wechat_client import WeChatServer

RECEIPT = re.compile(r"FF-\d{4}-\d{6}")
STAFF_CHAT = -9100
TG_NAMED, TG_ANON = 918273645501, 918273645502
WX_NAMED, WX_ANON = "oPRIVACYwxNamedReporter0001", "oPRIVACYwxAnonReporter00002"
WEB_NAMED, WEB_ANON, LOCAL = "web-privacy-named-4711", "web-privacy-anon-4712", "local-privacy-4713"
NAMES = {"telegram": "欧阳振华", "wechat": "司马明远", "web": "诸葛秀英", "local": "上官建国"}
PHONES = {"telegram": "13911110001", "wechat": "13922220002", "web": "13933330003", "local": "13944440004"}
WHAT = "{where}有人开会推销养老项目，说交五万块每月返利百分之二，拉人还有奖励"
DRAFT = "草稿：{where}一家叫金穗的公司收定金，说年底翻倍"


def whats(channel: str) -> tuple[str, str, str]:
    """Words of a named tip, of an anonymous one, and of a draft left half-way (distinct per channel)."""
    place = {"telegram": "东街社区", "wechat": "河口村", "web": "李家村", "local": "石桥村"}[channel]
    return WHAT.format(where=place), WHAT.format(where=place + "北头"), DRAFT.format(where=place)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as f:
        f.add_chat(STAFF_CHAT, "supergroup", title="处非办工作群")
        yield f


async def test_no_reporter_can_be_linked_to_a_tip_without_the_key(engine: Engine, fake: FakeTelegram,
                                                                  settings: Settings, tmp_path: Path) -> None:
    services = engine.services
    services.settings.telegram = TelegramSettings(token=fake.token, base_url=fake.base_url, staff_chat_id=STAFF_CHAT)
    receipts: list[str] = []

    # -- Telegram: named (a staff alert goes to the staff chat), anonymous, and a draft left half-way
    channel = TelegramChannel(engine, services.settings.telegram)
    await channel.start()
    try:
        named, anonymous, draft = whats("telegram")
        for user, what, identity in ((TG_NAMED, named, "实名"), (TG_ANON, anonymous, "匿名")):
            await say(fake, "/report", user=user)
            await say(fake, what, user=user)
            for _ in range(4):
                await press(fake, "跳过", chat=user)
            await press(fake, "没有了，下一步", chat=user)
            await press(fake, identity, chat=user)
            if identity == "实名":
                await say(fake, NAMES["telegram"], user=user)
                await say(fake, PHONES["telegram"], user=user)
            done = await press(fake, "确认提交", chat=user)
            receipts.append(RECEIPT.search(" ".join(m["plain_text"] for m in done)).group(0))
        await say(fake, "/report", user=TG_NAMED)
        await say(fake, draft, user=TG_NAMED)
    finally:
        await channel.stop()

    # -- WeChat (safe mode)
    wechat_channel = WeChatChannel(engine, wechat_settings(True))
    app = create_app(engine, wechat_channel.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://oa.test") as client:
        wechat = WeChatServer(client, safe=True)
        named, anonymous, draft = whats("wechat")
        for user, what, choice in ((WX_NAMED, named, "1"), (WX_ANON, anonymous, "2")):
            await wechat.say(user, "我要举报")
            await wechat.say(user, what)
            for number in ("1", "4", "1", "1", "1"):  # 跳过 who, where (after 3 townships), money, when; no evidence
                await wechat.say(user, number)
            await wechat.say(user, choice)  # 实名 / 匿名
            if choice == "1":
                await wechat.say(user, NAMES["wechat"])
                await wechat.say(user, PHONES["wechat"])
            receipts.append(RECEIPT.search(await wechat.say(user, "1")).group(0))  # 确认提交
        await wechat.say(WX_NAMED, "举报")
        await wechat.say(WX_NAMED, draft)
    await wechat_channel.close()

    # -- web chat
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(engine)),
                                 base_url="http://fangfei.test") as client:
        named, anonymous, draft = whats("web")
        for user, what, identity in ((WEB_NAMED, named, "实名"), (WEB_ANON, anonymous, "匿名")):
            me = WebUser(client, user)
            await me.send("举报")
            await me.send(what)
            for _ in range(4):
                await me.tap("跳过")
            await me.tap(identity)
            if identity == "实名":
                await me.send(NAMES["web"])
                await me.send(PHONES["web"])
            await me.tap("确认提交")
            receipts.append(RECEIPT.search(me.text).group(0))
        draft_user = WebUser(client, WEB_NAMED)
        await draft_user.send("举报")
        await draft_user.send(draft)

    # -- local chat (numbered options, one message a line)
    named, _, draft = whats("local")
    lines = ["举报", named, "1", "4", "1", "1", "1", NAMES["local"], PHONES["local"], "1", "举报", draft]
    out = io.StringIO()
    await local.run(engine, io.StringIO("\n".join(lines) + "\n"), out, user=LOCAL)
    receipts.append(RECEIPT.search(out.getvalue()).group(0))
    assert len(set(receipts)) == 7

    # -- staff change every tip's status; web and local reporters get a notice at their next message
    async with services.db.transaction() as session:
        for receipt in receipts:
            tip = await ledger.find(session, receipt)
            assert tip is not None
            await ledger.change(session, tip, "staff:王科长", status="verifying")
            await tell_status(session, services.settings, services.vault, tip, postgres=not services.db.is_sqlite)
    web_news = await conversation_of(services, "web", WEB_ANON)
    assert web_news is not None and web_news.notice and RECEIPT.search(web_news.notice)  # readable with the key
    assert not RECEIPT.search(web_news.row.notice or "")  # and only with it

    platform_ids = [str(TG_NAMED), str(TG_ANON), WX_NAMED, WX_ANON, WEB_NAMED, WEB_ANON, LOCAL]
    secrets = [*NAMES.values(), *PHONES.values(), *(whats(c)[2] for c in NAMES)]

    # -- every table, as stored
    tables: dict[str, list[str]] = {}
    async with services.db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = (await conn.execute(text(f"SELECT * FROM {table.name}"))).all()
            tables[table.name] = [" | ".join(map(str, row)) for row in rows]
        conversation_keys = set((await conn.execute(select(Conversation.user_id))).scalars())
        reporters = set((await conn.execute(select(Tip.reporter))).scalars())
    everything = "\n".join(row for rows in tables.values() for row in rows)
    for value in platform_ids + secrets:
        assert value not in everything, value
    assert not any(RECEIPT.search(row) for row in tables["conversations"])  # menus and notices are sealed
    assert conversation_keys and reporters and not conversation_keys & reporters  # no join on the fingerprints
    keys = {key_of(services.vault, ch, u) for ch, u in (("web", WEB_NAMED), ("telegram", str(TG_NAMED)))}
    assert keys <= conversation_keys  # (the rows are there, under keys only the secret can make)
    for name, rows in tables.items():  # a conversation key appears in no other table
        if name != "conversations":
            assert not any(k in row for k in conversation_keys for row in rows), name

    # -- the raw bytes a backup holds
    if services.db.is_sqlite:
        path = Path(make_url(settings.database.url).database or "")
        raw = b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))  # + -wal
        assert b"FF-" in raw  # the ledger is there ...
        for value in platform_ids + secrets:
            assert value.encode() not in raw, value  # ... but nobody's identity or unfinished words
    else:
        pg_dump = shutil.which("pg_dump")
        if pg_dump is None:
            pytest.skip("pg_dump is not installed")
        url = make_url(settings.database.url)
        command = [pg_dump, "--data-only", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432),
                   "-U", url.username or "postgres", url.database or "test"]
        dump = (await asyncio.to_thread(subprocess.run, command,
                                        capture_output=True, text=True, check=True)).stdout
        assert "FF-" in dump
        for value in platform_ids + secrets:
            assert value not in dump, value


async def test_conversations_of_an_older_schema_are_sealed_by_the_upgrade(tmp_path: Path, engine: Engine) -> None:
    """A database of the schema before 0007 keeps its drafts: `db upgrade` (which has the key) seals them and keys
    them by fingerprint; without the key it refuses instead of losing them."""
    from alembic import command

    from bot.storage import database as storage

    services = engine.services
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(storage._alembic_config(c), "0006"))
        await conn.execute(text(
            "INSERT INTO conversations (channel, user_id, chat_id, flow, step, data, menu, notice, updated_at, version)"
            " VALUES ('web', 'web-old-1', 'web-old-1', 'report', 'who', :data, '{}', :notice, CURRENT_TIMESTAMP, 3)"),
            {"data": '{"what": "旧草稿：有人让交钱入股合作社", "started": "2999-01-01T00:00:00+00:00"}',
             "notice": "您的举报 FF-2026-000001 有新进展"})
    with pytest.raises(RuntimeError, match="db upgrade"):
        await db.upgrade()
    await db.upgrade(services.vault)
    old = dataclasses.replace(services, db=db)
    stored = await conversation_of(old, "web", "web-old-1")
    assert stored is not None and stored.state["data"]["what"] == "旧草稿：有人让交钱入股合作社"
    assert stored.notice == "您的举报 FF-2026-000001 有新进展" and stored.row.flow == "report"
    replies = await Engine(old).handle(Inbound(channel="web", user="web-old-1", chat="web-old-1",
                                               text="一家叫富农的合作社"))
    assert "新进展" in replies[0].text and "第3步" in replies[-1].text  # the draft goes on where it was
    await db.close()
    raw = (tmp_path / "old.db").read_bytes()
    assert "旧草稿".encode() not in raw and b"web-old-1" not in raw
