"""Tips from the resident's side: the guided report on the web chat, Telegram (with a photo) and WeChat (with an
image); cancel, skip, edit, restart; receipts, status queries, limits, duplicates; nothing identifying in the clear."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, text, update

from bot.channels.telegram import TelegramChannel
from bot.channels.wechat import WeChatChannel
from bot.config import Settings, StaffMember, TelegramSettings
from bot.engine import Engine
from bot.outbox import Dispatcher
from bot.services import Services
from bot.staff import accounts
from bot.storage.conversations import key_of
from bot.storage.models import AuditEntry, Conversation, OutboxMessage, QuestionGap, Tip, TipChange, TipEvidence
from bot.tips import alerts, evidence, ledger
from bot.tips.drafts import remind_abandoned
from bot.types import Inbound
from bot.web.app import create_app
from tests.fake_telegram import FakeTelegram
from tests.stored import conversation_of
from tests.test_telegram import keyboard_labels, press, say, settled
from tests.test_telegram import text as tg_text
from tests.test_web_chat import WebUser
from tests.test_wechat import wechat_settings
from tests.wechat_client import WeChatServer, image_xml, voice_xml

RECEIPT = re.compile(r"FF-\d{4}-\d{6}")
NAME, PHONE = "张秀兰", "13912345678"
WHAT = "村里有人开会推销养老项目，说交五万块每月返利百分之二，拉人还有奖励"


async def tips(engine: Engine) -> list[Tip]:
    async with engine.services.db.session() as s:
        return list(await s.scalars(select(Tip).order_by(Tip.id)))


async def fill_in_named(me: WebUser, what: str = WHAT) -> None:
    """A report up to its summary: what happened, the rest skipped, real name and phone."""
    await me.send("举报")
    await me.send(what)
    for _ in range(4):
        await me.tap("跳过")
    await me.tap("实名")
    await me.send(NAME)
    await me.send(PHONE)


async def test_a_named_report_on_the_web_chat_with_skip_and_edit(web: httpx.AsyncClient, engine: Engine) -> None:
    me = WebUser(web, "web-reporter")
    await me.send("/start")
    await me.tap("我要举报")
    assert "身份依法保密" in me.text and "第1步" in me.text and "取消举报" in me.options()
    await me.send("投钱")  # too short to be a tip
    assert "多写几个字" in me.text
    await me.send(WHAT)
    assert "第2步" in me.text and "跳过" in me.options()
    await me.tap("跳过")
    assert "第3步" in me.text and "河口乡" in me.options()
    await me.tap("河口乡")
    await me.tap("李家村")
    assert "第4步" in me.text
    await me.send("投了五万，村里有十几个人")
    await me.tap("跳过")  # when
    assert "第6步" in me.text and "实名" in me.options()  # no evidence step on the web: it cannot take files
    await me.tap("实名")
    await me.send(NAME)
    await me.send("12345")
    assert "号码好像不对" in me.text and "改为匿名" in me.options()
    await me.send("139-1234-5678")
    summary = me.text
    assert "张**" in summary and "139****5678" in summary and PHONE not in summary and NAME not in summary
    assert "河口乡 李家村" in summary and "涉及对象：未填" in summary

    await me.tap("修改")
    await me.tap("时间")
    await me.send("上个月")
    assert "时间：上个月" in me.text and "确认提交" in me.options()  # straight back to the summary

    await me.tap("确认提交")
    receipt = RECEIPT.search(me.text)
    assert receipt is not None and receipt.group(0) == f"FF-{datetime.now(UTC).year}-000001"
    [tip] = await tips(engine)
    assert (tip.receipt, tip.status, tip.township, tip.village, tip.happened, tip.anonymous) == \
        (receipt.group(0), "new", "河口乡", "李家村", "上个月", False)
    assert tip.category in engine.services.kb.categories  # guessed from the text with the knowledge search
    assert tip.name_sealed and NAME not in tip.name_sealed and PHONE not in (tip.contact_sealed or "")
    assert engine.services.vault.open(tip.contact_sealed or "") == PHONE

    # the reporter asks; someone else asking about the same receipt learns nothing
    await me.send(f"查询举报 {receipt.group(0)}")
    assert "已收到，等待核查" in me.text
    other = WebUser(web, "someone-else")
    await other.send(f"查询举报 {receipt.group(0)}")
    assert "没有找到" in other.text and "等待核查" not in other.text
    await other.send("/start")
    await other.tap("查询举报")
    await other.send(receipt.group(0))
    assert "没有找到" in other.text


async def test_anonymous_report_cancel_and_stale_buttons(web: httpx.AsyncClient, engine: Engine) -> None:
    me = WebUser(web, "web-anon")
    await me.send("我要举报")
    await me.send(WHAT)
    await me.send("取消")
    assert "已取消" in me.text and "问问题" in me.options()
    assert await tips(engine) == []

    await me.send("举报")
    await me.send(WHAT)
    who = me.options()
    await me.tap("取消举报")  # one tap (or one digit on WeChat) is easy to hit: asked first
    assert "确定要放弃" in me.text
    await me.tap("接着填")
    assert "第2步" in me.text
    await me.tap("取消举报")
    await me.tap("确定放弃")
    assert "内容已经删除" in me.text
    await me.send(who["跳过"])  # a button from the cancelled report
    assert "过期" in me.text

    await me.send("举报")
    await me.send(WHAT)
    await me.send("一个叫“金福养老”的公司")
    await me.send("镇上的活动室")  # typed place instead of a township
    await me.tap("跳过")
    await me.tap("跳过")
    await me.send("随便打的字")  # the identity step waits for a button
    assert "请点下面的选项" in me.text and "匿名" in me.options()
    await me.tap("匿名")
    assert "身份：匿名" in me.text and "地点：镇上的活动室" in me.text
    await me.tap("确认提交")
    [tip] = await tips(engine)
    assert tip.anonymous and tip.name_sealed is None and tip.place == "镇上的活动室" and tip.who.startswith("一个叫")
    # the same words again: recognised, not filed twice
    await me.send("举报")
    await me.send(WHAT + "。")
    for _ in range(4):
        await me.tap("跳过")
    await me.tap("匿名")
    await me.tap("确认提交")
    assert "已经提交过了" in me.text and tip.receipt in me.text
    assert len(await tips(engine)) == 1


async def test_a_menu_word_in_the_middle_asks_before_dropping_the_report(web: httpx.AsyncClient,
                                                                       engine: Engine) -> None:
    me = WebUser(web, "web-wander")
    await me.send("举报")
    await me.send(WHAT)
    who = me.options()
    await me.send("菜单")
    assert "还没提交" in me.text and set(me.options()) == {"接着填", "放弃举报"}
    await me.send(who["跳过"])  # a button of an older menu: expired, and the report goes on
    assert "过期" in me.text and "第2步" in me.text
    await me.send("帮助")
    await me.tap("风险自测")  # from the help's menu: still asked first
    assert "还没提交" in me.text
    await me.tap("接着填")
    assert "第2步" in me.text  # nothing lost
    await me.send("查询举报FF-2026-000001")  # a status query mid-report (typed without a space) …
    assert "没有找到" in me.text and "第2步" in me.text  # … is answered, and the report goes on
    await me.send("问问题")
    await me.tap("放弃举报")
    assert "已经放弃" in me.text and "请把您想问的发给我" in me.text  # and the asked-for flow opens
    await me.send("举报")
    assert "第1步" in me.text


async def test_daily_cap(web: httpx.AsyncClient, engine: Engine) -> None:
    settings = engine.services.settings  # this test's own copy: replace the section, do not mutate the shared one
    settings.tips = settings.tips.model_copy(update={"max_per_day": 2})
    me = WebUser(web, "web-busy")
    for n in range(3):
        await me.send("举报")
        await me.send(f"第{n}件事：有人在集市上推销理财，说保本高息，年化百分之{20 + n}")
        for _ in range(4):
            await me.tap("跳过")
        await me.tap("匿名")
        await me.tap("确认提交")
    assert "24小时内最多提交 2 条" in me.text and "确认提交" in me.options()  # the draft is kept
    assert len(await tips(engine)) == 2


async def test_a_restart_in_the_middle_resumes_the_report(settings: Settings, engine: Engine,
                                                          web: httpx.AsyncClient) -> None:
    me = WebUser(web, "web-restart")
    await me.send("举报")
    await me.send(WHAT)
    await me.tap("跳过")
    # a new process: new engine, new app, same database
    restarted = Engine(Services(settings=engine.services.settings, db=engine.services.db, kb=engine.services.kb,
                                index=engine.services.index, risk=engine.services.risk, vault=engine.services.vault))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(restarted)),
                                 base_url="http://fangfei.test") as client:
        again = WebUser(client, "web-restart")
        await again.send("城关镇东街")
        assert "第4步" in again.text  # the answer was taken as the place, the report goes on
        for _ in range(2):
            await again.tap("跳过")
        await again.tap("匿名")
        assert WHAT in again.text
        await again.tap("确认提交")
        assert RECEIPT.search(again.text)


async def test_an_old_draft_is_dropped_and_news_waits_for_the_next_visit(web: httpx.AsyncClient,
                                                                         engine: Engine) -> None:
    me = WebUser(web, "web-old")
    await me.send("举报")
    await me.send(WHAT)
    stored = await conversation_of(engine.services, "web", "web-old")
    assert stored is not None and stored.row.flow == "report"
    vault, state = engine.services.vault, stored.state
    state["data"]["started"] = (datetime.now(UTC) - timedelta(hours=25)).isoformat()
    async with engine.services.db.transaction() as s:
        await s.execute(update(Conversation).where(Conversation.id == stored.row.id).values(
            state=vault.seal(json.dumps(state)), notice=vault.seal("您的举报 FF-2026-000009 有新进展：正在核查。")))
    await me.send(PHONE)  # meant for the old draft: not taken as a question (nor kept as an unanswered one)
    assert me.text.startswith("您的举报 FF-2026-000009 有新进展") and "已经删除" in me.text
    async with engine.services.db.session() as s:
        assert await s.scalar(select(func.coalesce(func.sum(QuestionGap.count), 0))) == 0
    await me.send("你好")
    assert "新进展" not in me.text and "删除" not in me.text  # told once


async def test_nothing_identifying_is_stored_in_the_clear(web: httpx.AsyncClient, engine: Engine,
                                                          settings: Settings) -> None:
    me = WebUser(web, "web-private")
    await fill_in_named(me)  # the draft now holds both, sealed
    db = engine.services.db
    await me.tap("确认提交")
    await fill_in_named(me, "另一件事：有人推销虚拟币挖矿，说稳赚不赔")  # a draft left with the identity in it
    async with db.engine.connect() as conn:  # the ledger does not say who filed a tip, except sealed
        dump = " ".join(str(r) for r in (await conn.execute(text("SELECT * FROM tips"))).all())
        assert "web-private" not in dump and "FF-" in dump
    if db.is_sqlite:
        await db.close()  # checkpoint the WAL so the file holds everything
        raw = b"".join(p.read_bytes() for p in sorted(settings_paths(settings)))
        assert b"FF-" in raw and NAME.encode() not in raw and PHONE.encode() not in raw
    else:
        async with db.engine.connect() as conn:
            for table in ("tips", "conversations", "tip_changes", "outbox", "audit_log"):
                dump = " ".join(str(r) for r in (await conn.execute(text(f"SELECT * FROM {table}"))).all())
                assert NAME not in dump and PHONE not in dump, table


def settings_paths(settings: Settings) -> list:
    from pathlib import Path

    base = Path(settings.database.url.split("///", 1)[1])
    return [p for p in base.parent.iterdir() if p.name.startswith(base.name)]


# -- Telegram --------------------------------------------------------------------------------------------------
RESIDENT, STAFF, HANDLER, STAFF_CHAT = 3001, 4004, 4005, -600


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as f:
        f.add_chat(STAFF_CHAT, "supergroup", title="处非办工作群")
        yield f


@pytest.fixture
async def telegram(engine: Engine, fake: FakeTelegram) -> AsyncIterator[TelegramChannel]:
    configured = TelegramSettings(token=fake.token, base_url=fake.base_url, staff_chat_id=STAFF_CHAT,
                                  staff=[StaffMember(id=STAFF, role="staff"), StaffMember(id=HANDLER, role="handler")])
    engine.services.settings.telegram = configured  # (this test's own settings copy) alerts go to the staff chat
    ch = TelegramChannel(engine, configured)
    await ch.start()
    yield ch
    await ch.stop()
    fake.assert_no_violations()


async def test_a_report_on_telegram_with_a_photo(telegram: TelegramChannel, fake: FakeTelegram,
                                                 engine: Engine) -> None:
    await say(fake, "/report", user=RESIDENT)
    await say(fake, WHAT, user=RESIDENT)
    before = len(fake.messages_to(RESIDENT))
    fake.photo(RESIDENT, "photo-early")  # sent before the evidence step: kept, and the question comes again
    early = await settled(fake, RESIDENT, before)
    assert "已有 1 件证据" in tg_text(early) and "第2步" in tg_text(early)
    for _ in range(4):
        await press(fake, "跳过", chat=RESIDENT)
    assert "第6步" in tg_text(fake.messages_to(RESIDENT)[-1:])
    before = len(fake.messages_to(RESIDENT))
    fake.photo(RESIDENT, "photo-contract", caption="合同")
    got = await settled(fake, RESIDENT, before)
    assert "已有 2 件证据" in tg_text(got) and "下一步" in keyboard_labels(got[-1])
    await press(fake, "下一步", chat=RESIDENT)
    await press(fake, "匿名", chat=RESIDENT)
    done = await press(fake, "确认提交", chat=RESIDENT)
    receipt = RECEIPT.search(tg_text(done))
    assert receipt is not None
    async with engine.services.db.session() as s:
        tip = await s.scalar(select(Tip))
        assert tip is not None and tip.channel == "telegram"
        refs = [e.ref for e in await s.scalars(select(TipEvidence).where(TipEvidence.tip_id == tip.id))]
        assert refs == ["photo-early", "photo-contract"]
        alert = await s.scalar(select(OutboxMessage).where(OutboxMessage.channel == "telegram"))
        assert alert is not None and receipt.group(0) in alert.payload["text"]  # queued for the staff chat

    # staff mark it as being verified from the staff chat; the reporter's query shows the new status
    await say(fake, f"/verify {receipt.group(0)}", user=STAFF, chat_id=STAFF_CHAT, chat_type="supergroup")
    async with engine.services.db.session() as s:
        tip = await s.scalar(select(Tip))
        assert tip is not None and tip.status == "verifying"
        changes = list(await s.scalars(select(TipChange).where(TipChange.field == "status").order_by(TipChange.id)))
        assert [(c.old, c.new, c.actor) for c in changes][-1] == ("new", "verifying", f"telegram:{STAFF}")
    # the reporter is told, through the outbox, in their own chat
    before = len(fake.messages_to(RESIDENT))
    services, bot = engine.services, telegram.app.bot
    senders = {"telegram": alerts.telegram_sender(bot, services.vault),
               "fetch-telegram": evidence.telegram_fetcher(bot, services.db, services.vault, 1 << 20)}
    assert await Dispatcher(services.db, senders).run_once() == 4  # staff alert, notice, and the two photos kept
    told = await settled(fake, RESIDENT, before)
    assert f"您的举报 {receipt.group(0)} 有新进展：正在核查" in tg_text(told) and "{" not in tg_text(told)
    status = await say(fake, f"查询举报 {receipt.group(0)}", user=RESIDENT)
    assert "正在核查" in tg_text(status)
    async with services.db.session() as s:
        kept = [await evidence.content(s, services.vault, e) for e in await s.scalars(select(TipEvidence))]
    assert len(kept) == 2 and all(data and data.startswith(b"\xff\xd8") for data in kept)  # the JPEGs, sealed
    refused = await say(fake, f"/verify {receipt.group(0)}", user=RESIDENT)
    assert "只对工作人员开放" in tg_text(refused)


async def test_reports_are_not_taken_in_a_group(telegram: TelegramChannel, fake: FakeTelegram, engine: Engine) -> None:
    group = -7700
    fake.add_chat(group, "group", title="幸福村村民群")
    answer = await say(fake, "/report", user=RESIDENT, chat_id=group, chat_type="group")
    assert "请私聊我" in tg_text(answer)
    answer = await say(fake, "/status FF-2026-000001", user=RESIDENT, chat_id=group, chat_type="group")
    assert "请私聊我" in tg_text(answer)
    async with engine.services.db.session() as s:
        assert await s.scalar(select(func.count(Conversation.id)).where(Conversation.flow == "report")) == 0


async def test_only_a_handler_sees_who_reported_privately_and_audited(telegram: TelegramChannel, fake: FakeTelegram,
                                                                       engine: Engine, web: httpx.AsyncClient) -> None:
    me = WebUser(web, "web-named")
    await fill_in_named(me)
    await me.tap("确认提交")
    receipt = RECEIPT.search(me.text)
    assert receipt is not None
    command = f"/reveal {receipt.group(0)}"
    assert "只有经办人" in tg_text(await say(fake, command, user=STAFF))
    in_group = await say(fake, command, user=HANDLER, chat_id=STAFF_CHAT, chat_type="supergroup")
    assert "私聊" in tg_text(in_group) and PHONE not in tg_text(in_group)
    async with engine.services.db.session() as s:
        assert (await s.scalar(select(func.count(AuditEntry.id)))) == 0
    shown = tg_text(await say(fake, command, user=HANDLER))
    assert NAME in shown and PHONE in shown and "审计" in shown
    async with engine.services.db.session() as s:
        [entry] = list(await s.scalars(select(AuditEntry)))
    assert (entry.actor, entry.action, entry.subject) == (f"telegram:{HANDLER}", "reveal-identity", receipt.group(0))


async def test_telegram_staff_who_name_a_console_account_act_as_it(engine: Engine, fake: FakeTelegram,
                                                                    web: httpx.AsyncClient) -> None:
    """The account decides, not the configured role: its role (reveals), its townships (tips of other townships
    are not found) and its disabled flag; the ledger and the audit log carry its name."""
    services = engine.services
    async with services.db.transaction() as s:
        await accounts.add(s, services.settings, "赵经办", "handler", ["hekou"], None)
        await accounts.add(s, services.settings, "钱经办", "handler", ["chengguan"], None)
        await accounts.add(s, services.settings, "孙网格", "staff", [], None)
    hekou, chengguan, county, nobody = 4010, 4011, 4012, 4013
    configured = TelegramSettings(token=fake.token, base_url=fake.base_url, staff_chat_id=STAFF_CHAT, staff=[
        StaffMember(id=hekou, account="赵经办"), StaffMember(id=chengguan, account="钱经办"),
        StaffMember(id=county, role="handler", account="孙网格"), StaffMember(id=nobody, account="没这个人")])
    services.settings.telegram = configured
    channel = TelegramChannel(engine, configured)
    await channel.start()
    try:
        me = WebUser(web, "web-named")
        await fill_in_named(me)
        await me.tap("确认提交")
        receipt = RECEIPT.search(me.text)
        assert receipt is not None
        async with services.db.transaction() as s:
            await s.execute(update(Tip).values(township="城关镇"))
        reveal = f"/reveal {receipt.group(0)}"
        assert "没有找到" in tg_text(await say(fake, reveal, user=hekou))  # another township's tip
        assert "只有经办人" in tg_text(await say(fake, reveal, user=county))  # config says handler; the account not
        assert "没有找到" in tg_text(await say(fake, f"/take {receipt.group(0)}", user=hekou))
        shown = tg_text(await say(fake, reveal, user=chengguan))
        assert NAME in shown and PHONE in shown
        assert "已由 孙网格 认领" in tg_text(await say(fake, f"/take {receipt.group(0)}", user=county))
        assert "已停用" in tg_text(await say(fake, "/stats", user=nobody))
        async with services.db.transaction() as s:
            await accounts.set_disabled(s, "孙网格")
        assert "已停用" in tg_text(await say(fake, f"/verify {receipt.group(0)}", user=county))
        async with services.db.session() as s:
            tip = await s.scalar(select(Tip))
            assert tip is not None and (tip.assignee, tip.status) == ("孙网格", "new")
            entries = [(e.actor, e.action) for e in await s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
        assert ("钱经办", "reveal-identity") in entries and all(actor != "赵经办" for actor, _ in entries)
    finally:
        await channel.stop()


# -- WeChat ----------------------------------------------------------------------------------------------------
@pytest.fixture
async def wechat(engine: Engine) -> AsyncIterator[WeChatServer]:
    channel = WeChatChannel(engine, wechat_settings(True))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(engine, channel.routes())),
                                 base_url="http://oa.test") as client:
        yield WeChatServer(client, safe=True)
    await channel.close()


async def test_a_report_on_wechat_with_an_image(wechat: WeChatServer, engine: Engine) -> None:
    user = "o-reporter-1"
    first = await wechat.say(user, "我要举报")
    assert "第1步" in first and "回复 1：取消举报" in first
    assert "第2步" in await wechat.say(user, WHAT)
    await wechat.say(user, "1")  # 跳过
    where = await wechat.say(user, "3")  # 青山镇
    assert "青山镇的哪个村" in where
    await wechat.say(user, "石桥村")  # the label typed instead of its number
    await wechat.say(user, "1")  # money: 跳过
    evidence = await wechat.say(user, "1")  # when: 跳过
    assert "第6步" in evidence
    unheard = wechat.reply_text(await wechat.post(voice_xml(user, None)))
    assert "请打字回答" in unheard and "第6步" in unheard  # the report stays where it was
    unread = await wechat.say(user, "？？👀")
    assert "没看懂" in unread and "第6步" in unread and "问问题" not in unread
    got = wechat.reply_text(await wechat.post(image_xml(user)))
    assert "已有 1 件证据" in got
    await wechat.say(user, "1")  # 下一步
    await wechat.say(user, "1")  # 实名
    await wechat.say(user, NAME)
    summary = await wechat.say(user, PHONE)  # digits, yet not a menu number: the answer to the question
    assert "139****5678" in summary and PHONE not in summary
    done = await wechat.say(user, "1")  # 确认提交
    receipt = RECEIPT.search(done)
    assert receipt is not None
    async with engine.services.db.session() as s:
        tip = await s.scalar(select(Tip))
        assert tip is not None and (tip.channel, tip.township, tip.village) == ("wechat", "青山镇", "石桥村")
        assert engine.services.vault.open(tip.contact_sealed or "") == PHONE
        [proof] = list(await s.scalars(select(TipEvidence)))
        assert (proof.kind, proof.ref, proof.url) == ("image", "m2", "http://127.0.0.1/x.jpg")
    assert "等待核查" in await wechat.say(user, f"查询举报 {receipt.group(0)}")
    assert "没有找到" in await wechat.say("o-someone-else", receipt.group(0))


async def test_receipts_count_up_within_a_year(engine: Engine) -> None:
    db = engine.services.db
    async with db.transaction() as s:
        first = await ledger.next_receipt(s, postgres=not db.is_sqlite)
        second = await ledger.next_receipt(s, postgres=not db.is_sqlite)
        old = await ledger.next_receipt(s, postgres=not db.is_sqlite, now=datetime(2025, 6, 1, tzinfo=UTC))
    year = datetime.now(UTC).year
    assert (first, second, old) == (f"FF-{year}-000001", f"FF-{year}-000002", "FF-2025-000001")


async def test_a_staff_command_in_the_middle_of_a_draft_does_not_keep_it_alive(engine: Engine) -> None:
    """A staff member who is also filling in a report asks for /gaps: the answer reads the ledger (and so is ordered
    with their other messages) but leaves the draft as it was, so it still counts as left alone since its last step."""
    engine.services.settings.telegram = TelegramSettings(token="123:abc")
    await engine.handle(Inbound(channel="telegram", user="6006", chat="6006", text="举报"))
    await engine.handle(Inbound(channel="telegram", user="6006", chat="6006", text=WHAT))
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    async with engine.services.db.transaction() as s:
        await s.execute(update(Conversation).where(Conversation.user_id == key_of(engine.services.vault, "telegram",
                                                                                  "6006")).values(updated_at=an_hour_ago))
    gaps = await engine.handle(Inbound(channel="telegram", user="6006", chat="6006", text="/gaps", role="admin"))
    assert "答不上" in gaps[-1].text
    assert await remind_abandoned(engine.services) == 1  # still idle since the last step of the report


async def test_an_abandoned_draft_is_reminded_once(engine: Engine, web: httpx.AsyncClient) -> None:
    from bot.tips.drafts import drop_expired

    settings = engine.services.settings  # this test's copy: Telegram configured, so its residents can be reached
    settings.telegram = TelegramSettings(token="123:abc")
    web_user = WebUser(web, "web-draft")
    await web_user.send("举报")
    await web_user.send(WHAT)
    tg_user = Inbound(channel="telegram", user="5005", chat="5005", text="举报")
    await engine.handle(tg_user)
    await engine.handle(Inbound(channel="telegram", user="5005", chat="5005", text=WHAT))
    assert await remind_abandoned(engine.services) == 0  # not idle long enough yet
    later = datetime.now(UTC) + timedelta(minutes=settings.tips.remind_after_minutes + 1)
    assert await remind_abandoned(engine.services, now=later) == 1  # the web chat cannot be reached
    assert await remind_abandoned(engine.services, now=later) == 0  # once
    async with engine.services.db.session() as s:
        [row] = list(await s.scalars(select(OutboxMessage)))
    assert row.channel == "telegram" and engine.services.vault.open(row.target) == "5005"
    assert "还没填完" in row.payload["text"]
    too_late = datetime.now(UTC) + timedelta(hours=settings.tips.draft_hours + 1)
    assert await remind_abandoned(engine.services, now=too_late) == 0
    back = await engine.handle(Inbound(channel="telegram", user="5005", chat="5005", text="继续"))
    assert "第2步" in back[-1].text  # where the report stopped
    # a day later the drafts are deleted at rest, whether or not their authors come back
    assert await drop_expired(engine.services, now=too_late) == 2
    async with engine.services.db.session() as s:
        assert await s.scalar(select(func.count(Conversation.id)).where(Conversation.flow == "report")) == 0
