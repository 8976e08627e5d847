"""Warning broadcasts: a segment's subscribers each get one copy on their channel, through the outbox, within the
two-person rule, quiet hours, pause, resume and cancel; staff drive it with `fangfei broadcast …`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from telegram import Bot

from bot import subscribers
from bot.broadcasts import lifecycle, relay, report, segments
from bot.broadcasts import senders as warning_senders
from bot.channels.wechat_api import WeChatApi
from bot.channels.wecom import WeComRobot
from bot.config import Settings, WeChatSettings
from bot.engine import Engine
from bot.outbox import Dispatcher, Sender
from bot.services import Services
from bot.storage.models import AuditEntry, Broadcast, OutboxMessage, utcnow
from bot.types import Inbound
from bot.web.app import create_app
from tests.fake_telegram import FakeTelegram
from tests.fake_wechat import FakeWeChat, FakeWeComRobot
from tests.support import Server
from tests.test_cli import run
from tests.test_web_chat import WebUser

UNSUBSCRIBE = "回复“退订”，不再接收提醒。"
# Telegram subscribers: (chat id, audience, township, village)
PEOPLE = [(7001, "elderly", "城关镇", "南关村"), (7002, "elderly", "城关镇", "东街社区"),
          (7003, "student", "城关镇", None), (7004, "elderly", "河口乡", "河口村"), (7005, "other", None, None)]


def with_broadcasts(services: Services, **changes: Any) -> Services:
    settings = services.settings
    rules = settings.broadcasts.model_copy(update={"approvers": ["李四", "王五"], **changes})
    telegram = settings.telegram.model_copy(update={"token": "123:test"})
    return dataclasses.replace(services, settings=settings.model_copy(update={"broadcasts": rules,
                                                                                "telegram": telegram}))


async def subscribe_people(services: Services) -> None:
    async with services.db.transaction() as session:
        for chat, audience, township, village in PEOPLE:
            await subscribers.subscribe(session, "telegram", str(chat), audience, township, village)


def dispatcher(services: Services, bot: Bot, *, quiet: bool = False, batch: int = 50,
               extra: dict[str, Sender] | None = None) -> Dispatcher:
    to_telegram = warning_senders.telegram(bot, services.db)
    senders = {"warn-telegram": to_telegram, "relay-telegram": to_telegram,
               "warn-notice": warning_senders.notice(services.db, services.vault), **(extra or {})}
    return Dispatcher(services.db, senders, batch=batch, base_backoff=0.01, quiet=lambda: quiet)


async def drafted(services: Services, settings: Settings | None = None, **fields: Any) -> int:
    settings = settings or services.settings
    values: dict[str, Any] = {"text": "【防非提醒】有人办讲座让老人交钱。请不要交钱。", "template": None,
                              "audience": "all", "townships": [], "villages": [],
                              "channels": ["telegram", "web", "local"], "send_at": None, "urgent": False,
                              "drafted_by": "张三", **fields}
    async with services.db.transaction() as session:
        return (await lifecycle.create(session, settings, **values)).id


async def approved(services: Services, broadcast_id: int, by: str = "李四") -> Broadcast:
    async with services.db.transaction() as session:
        return await lifecycle.approve(session, services.settings, await lifecycle.named(session, broadcast_id), by)


async def progress(services: Services, broadcast_id: int) -> dict[str, Any]:
    async with services.db.session() as session:
        return await lifecycle.progress(session, services.settings, await lifecycle.named(session, broadcast_id))


async def drain(d: Dispatcher) -> None:
    while await d.run_once():
        pass


@pytest.fixture
async def web_client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(engine)),
                                 base_url="http://fangfei.test") as c:
        yield c


async def test_each_subscriber_of_the_segment_gets_one_copy_on_their_channel(
        services: Services, telegram: FakeTelegram, bot: Bot, web_client: httpx.AsyncClient) -> None:
    services = with_broadcasts(services)
    await subscribe_people(services)
    # a web resident subscribes through the chat itself: elderly, 城关镇, 南关村
    resident = WebUser(web_client, "web-resident-1")
    await resident.send("订阅提醒")
    await resident.tap("老年人")
    await resident.tap("城关镇")
    await resident.tap("南关村")
    assert "订阅好了" in resident.text
    async with services.db.transaction() as session:  # gone: unsubscribed; blocked: cannot be reached
        await subscribers.subscribe(session, "telegram", "7006", "elderly", "城关镇", "南关村")
        await subscribers.unsubscribe(session, "telegram", "7006")
        await subscribers.subscribe(session, "telegram", "7007", "elderly", "城关镇", "西街社区")
        await subscribers.mark_unreachable(session, "telegram", "7007")

    # elderly residents of 城关镇 (the whole township) and of 河口村 (one village)
    broadcast_id = await drafted(services, audience="elderly", townships=["chengguan"], villages=["hekou-hekou"])
    async with services.db.session() as session:
        preview = await segments.preview(session, services.settings, await session.get(Broadcast, broadcast_id))
    assert preview == {"total": 5, "reachable": 4, "channels": {"telegram": 3, "web": 1},
                       "routes": {"warn-telegram": 3, "warn-notice": 1}, "skipped": {"blocked": 1}}

    await approved(services, broadcast_id)
    d = dispatcher(services, bot)
    await drain(d)
    for chat in (7001, 7002, 7004):
        assert telegram.texts_to(chat) == [f"【防非提醒】有人办讲座让老人交钱。请不要交钱。\n\n{UNSUBSCRIBE}"]
    for chat in (7003, 7005, 7006, 7007):  # a student, another audience, unsubscribed, blocked
        assert telegram.texts_to(chat) == []
    shown = await progress(services, broadcast_id)
    assert (shown["sent"], shown["pending"], shown["failed"], shown["skipped"], shown["total"]) == \
        (4, 0, 0, {"blocked": 1}, 5)

    # nothing twice: another round, a second start, the leader's round
    async with services.db.transaction() as session:
        broadcast = await session.get(Broadcast, broadcast_id)
        assert await lifecycle.start(session, services.settings, broadcast, utcnow()) == 0
        await lifecycle.advance(session, services.settings, utcnow())
    await drain(d)
    assert sum(len(telegram.texts_to(c)) for c, *_ in PEOPLE) == 3
    assert (await progress(services, broadcast_id))["state"] == "done"

    # the web resident finds it at their next message, once; and "退订" from that reply works
    await resident.send("你好")
    assert resident.text.count("有人办讲座让老人交钱") == 1 and UNSUBSCRIBE in resident.text
    await resident.send("你好")
    assert "有人办讲座让老人交钱" not in resident.text
    await resident.send("退订")
    assert "已经退订" in resident.text
    async with services.db.session() as session:
        later = await segments.preview(session, services.settings, await session.get(Broadcast, broadcast_id))
    assert later["channels"] == {"telegram": 3}


async def test_the_drafter_cannot_approve_and_every_step_is_audited(services: Services) -> None:
    services = with_broadcasts(services)
    broadcast_id = await drafted(services)
    async with services.db.transaction() as session:
        await lifecycle.edit(session, await lifecycle.named(session, broadcast_id), "张三", text="【防非提醒】改过的。")
    for approver, refusal in (("张三", "drafter cannot approve"), ("赵六", "not an approver")):
        with pytest.raises(lifecycle.BroadcastError, match=refusal):
            await approved(services, broadcast_id, by=approver)
    assert (await progress(services, broadcast_id))["state"] == "draft"
    # with the rule off, an approver may approve their own draft
    alone = with_broadcasts(services, two_person=False)
    own = await drafted(alone, alone.settings, drafted_by="李四")
    assert (await approved(alone, own, by="李四")).state == "sending"
    await approved(services, broadcast_id, by="王五")
    with pytest.raises(lifecycle.BroadcastError, match="not a draft"):
        await approved(services, broadcast_id, by="李四")
    with pytest.raises(lifecycle.BroadcastError, match="only a draft can be edited"):
        async with services.db.transaction() as session:
            await lifecycle.edit(session, await lifecycle.named(session, broadcast_id), "张三", text="改过的")
    async with services.db.transaction() as session:
        broadcast = await lifecycle.named(session, broadcast_id)
        await lifecycle.pause(session, broadcast, "王五")
        await lifecycle.resume(session, broadcast, "王五")
        await lifecycle.cancel(session, broadcast, "李四")
    async with services.db.session() as session:
        trail = (await session.execute(select(AuditEntry.actor, AuditEntry.action)
                                       .where(AuditEntry.subject == f"broadcast:{broadcast_id}")
                                       .order_by(AuditEntry.id))).all()
    assert [tuple(t) for t in trail] == [("张三", "broadcast-draft"), ("张三", "broadcast-edit"),
                                         ("王五", "broadcast-approve"),
                                         ("王五", "broadcast-pause"), ("王五", "broadcast-resume"),
                                         ("李四", "broadcast-cancel")]


async def test_pause_stops_sending_at_once_resume_goes_on_cancel_ends_it(
        services: Services, telegram: FakeTelegram, bot: Bot) -> None:
    services = with_broadcasts(services)
    async with services.db.transaction() as session:
        for chat in range(8000, 8030):
            await subscribers.subscribe(session, "telegram", str(chat), "student", None, None)
    broadcast_id = await drafted(services, audience="student")
    await approved(services, broadcast_id)
    d = dispatcher(services, bot, batch=5)
    assert await d.run_once() == 5
    async with services.db.transaction() as session:
        await lifecycle.pause(session, await lifecycle.named(session, broadcast_id), "李四")
    assert await d.run_once() == 0  # the next claim already skips it
    assert (await progress(services, broadcast_id))["pending"] == 25
    async with services.db.transaction() as session:
        await lifecycle.resume(session, await lifecycle.named(session, broadcast_id), "李四")
    assert await d.run_once() == 5
    async with services.db.transaction() as session:
        assert await lifecycle.cancel(session, await lifecycle.named(session, broadcast_id), "李四") == 20
    await drain(d)
    shown = await progress(services, broadcast_id)
    assert (shown["sent"], shown["cancelled"], shown["pending"], shown["state"]) == (10, 20, 0, "cancelled")
    assert sum(len(telegram.texts_to(c)) for c in range(8000, 8030)) == 10  # each of those ten once


async def test_quiet_hours_hold_elderly_copies_unless_urgent(services: Services, telegram: FakeTelegram,
                                                              bot: Bot) -> None:
    services = with_broadcasts(services)
    await subscribe_people(services)
    calm = await drafted(services)
    urgent = await drafted(services, urgent=True, text="【紧急提醒】今晚有人上门收钱，请不要开门交钱。")
    await approved(services, calm)
    await approved(services, urgent)
    night = dispatcher(services, bot, quiet=True)
    await drain(night)
    elderly = [c for c, audience, *_ in PEOPLE if audience == "elderly"]
    for chat, audience, *_ in PEOPLE:
        texts = telegram.texts_to(chat)
        assert any("紧急提醒" in t for t in texts)  # urgent: everyone, at once
        assert any("讲座" in t for t in texts) == (audience != "elderly")  # calm: not the elderly at night
    assert (await progress(services, calm))["pending"] == len(elderly)
    await drain(dispatcher(services, bot, quiet=False))  # the morning
    for chat in elderly:
        assert len(telegram.texts_to(chat)) == 2


def test_quiet_hours_cross_midnight_in_china_time(base_settings: Settings) -> None:
    rules = base_settings.broadcasts  # 21:00 to 08:00
    day = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)  # 08:00 in China
    assert not segments.is_quiet(rules, day)
    assert segments.is_quiet(rules, day - timedelta(minutes=1))  # 07:59
    assert segments.is_quiet(rules, day + timedelta(hours=13))  # 21:00
    assert not segments.is_quiet(rules, day + timedelta(hours=12, minutes=59))  # 20:59
    evening = rules.model_copy(update={"quiet_start": "12:00", "quiet_end": "14:00"})
    assert segments.is_quiet(evening, day + timedelta(hours=4, minutes=30))
    assert not segments.is_quiet(evening, day + timedelta(hours=6))


async def test_a_blocked_resident_is_unreachable_and_retry_resends_only_refused_copies(
        services: Services, telegram: FakeTelegram, bot: Bot) -> None:
    services = with_broadcasts(services)
    await subscribe_people(services)
    telegram.set_bot_status(7001, "kicked")  # blocked the bot since subscribing
    telegram.fail("sendMessage", 400, chat_id=7002, description="Bad Request: chat not found")
    broadcast_id = await drafted(services)
    await approved(services, broadcast_id)
    await drain(dispatcher(services, bot))
    shown = await progress(services, broadcast_id)
    assert (shown["sent"], shown["unreachable"], shown["failed"]) == (3, 1, 1)
    async with services.db.session() as session:
        blocked = await subscribers.find(session, "telegram", "7001")
        assert blocked is not None and not blocked.reachable
        reason = await session.scalar(select(OutboxMessage.last_error).where(OutboxMessage.status == "failed"))
        assert reason and "chat not found" in reason.lower()
    async with services.db.transaction() as session:
        again, left = await lifecycle.retry_failed(session, await lifecycle.named(session, broadcast_id), "李四")
    assert (again, left) == (1, 0)
    await drain(dispatcher(services, bot))
    assert len(telegram.texts_to(7002)) == 1 and telegram.texts_to(7001) == []
    for chat in (7003, 7004, 7005):
        assert len(telegram.texts_to(chat)) == 1

    # the report: villages with what reached them, the copy that did not with the reason, nobody's id in full
    async with services.db.session() as session:
        book = await report.build(session, services.settings, await session.get(Broadcast, broadcast_id))
    sheets = {sheet.title: [[c.value for c in row] for row in sheet.iter_rows()] for sheet in book.worksheets}
    assert list(sheets) == ["概况", "渠道", "村", "未送达"]
    assert ["城关镇", "南关村", 0, 0, 1, "", "", ""] in sheets["村"]
    assert ["城关镇", "东街社区", 1, 0, 0, "", "", ""] in sheets["村"]
    assert sheets["未送达"][1][:3] == ["warn-telegram", "****", "暂时送不到"] and "blocked" in sheets["未送达"][1][3]
    assert report.masked("o6_bmjrPTlm6_2sgVt7hMZOPfL2M") == "o6************************2M"
    assert ["warn-telegram", 4, 0, 1, 0, 0] in sheets["渠道"]
    cells = " ".join(str(v) for rows in sheets.values() for row in rows for v in row)
    assert all(str(chat) not in cells for chat, *_ in PEOPLE)

    # they unblock the bot and write: reachable for the next warning again; someone else's message changes nothing
    await Engine(services).handle(Inbound(channel="telegram", user="7001", chat="7001", text="你好"))
    await Engine(services).handle(Inbound(channel="web", user="7001", chat="7001", text="你好"))
    async with services.db.session() as session:
        back = await subscribers.find(session, "telegram", "7001")
        assert back is not None and back.reachable


async def test_staff_drive_a_warning_from_the_cli(db_env: dict[str, str], services: Services,
                                                 tmp_path: Path) -> None:
    async with services.db.transaction() as session:
        for chat, audience, township, village in PEOPLE:
            await subscribers.subscribe(session, "web", f"w{chat}", audience, township, village)
    env = {**db_env, "FANGFEI_BROADCASTS__APPROVERS": '["李四"]'}
    made = json.loads(run("broadcast", "create", "--template", "pension-seminar-township", "--township", "chengguan",
                          "--company", "福寿康养", "--audience", "elderly", "--channels", "web", "--as", "张三",
                          "--json", env=env).stdout)
    assert made["state"] == "draft" and "近期城关镇有“福寿康养”办讲座" in made["text"]
    assert "{" not in made["text"]
    missing = run("broadcast", "create", "--template", "pension-seminar-township", "--as", "张三", env=env,
                  check=False)
    assert missing.returncode == 2 and "needs --company, --township" in missing.stderr
    assert "edited" in run("broadcast", "edit", str(made["id"]), "--template", "pension-seminar-township",
                           "--township", "chengguan", "--company", "福寿养老", "--as", "张三", env=env).stdout
    preview = json.loads(run("broadcast", "preview", str(made["id"]), "--json", env=env).stdout)
    assert "“福寿养老”" in preview["text"]
    assert (preview["total"], preview["routes"]) == (2, {"warn-notice": 2})
    refused = run("broadcast", "approve", str(made["id"]), "--as", "张三", env=env, check=False)
    assert refused.returncode == 2 and "drafter cannot approve" in refused.stderr and "Traceback" not in refused.stderr
    assert "sending" in run("broadcast", "approve", str(made["id"]), "--as", "李四", env=env).stdout
    status = json.loads(run("broadcast", "status", str(made["id"]), "--json", env=env).stdout)
    assert (status["state"], status["pending"], status["total"]) == ("sending", 2, 2)
    assert "written" in run("broadcast", "report", str(made["id"]), "--xlsx", str(tmp_path / "r.xlsx"), env=env).stdout
    assert load_workbook(tmp_path / "r.xlsx").sheetnames == ["概况", "渠道", "村", "未送达"]
    listed = json.loads(run("broadcast", "list", "--json", env=env).stdout)
    assert [b["id"] for b in listed] == [made["id"]]
    cadre = json.loads(run("cadres", "add", "--name", "王村长", "--village", "chengguan-nanguan", "--channel",
                           "telegram", "--id", "9001", "--json", env=env).stdout)
    wrong = run("cadres", "add", "--name", "某人", "--village", "nowhere", "--channel", "telegram", "--id", "1",
                env=env, check=False)
    assert wrong.returncode == 2 and "not a village code" in wrong.stderr
    assert "removed" in run("cadres", "remove", str(cadre["id"]), env=env).stdout
    assert json.loads(run("cadres", "list", "--json", env=env).stdout) == []
    unknown = run("broadcast", "pause", "999", env=env, check=False)
    assert unknown.returncode == 2 and "no broadcast 999" in unknown.stderr
    async with services.db.session() as session:
        rows = await session.scalar(select(func.count()).select_from(OutboxMessage)
                                    .where(OutboxMessage.broadcast_id == made["id"]))
    assert rows == 2


async def test_serve_sends_an_approved_warning_at_its_time(db_env: dict[str, str], services: Services) -> None:
    env = {**db_env, "FANGFEI_BROADCASTS__APPROVERS": '["李四"]', "FANGFEI_BROADCASTS__EVERY_SECONDS": "0.5"}
    server = Server(env)
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.base) as client:
            resident = WebUser(client, "web-resident-2")
            await resident.send("订阅提醒")
            await resident.tap("学生")
            await resident.tap("跳过")
            # drafted and approved in this process (milliseconds), to go out in 3 s through serve's leader
            approving = with_broadcasts(services)
            broadcast_id = await drafted(approving, text="【防非提醒】开学了，当心“刷单返利”。", audience="student",
                                         channels=["web"], send_at=utcnow() + timedelta(seconds=3))
            assert (await approved(approving, broadcast_id)).state == "approved"
            await resident.send("你好")
            assert "刷单返利" not in resident.text  # not before its time
            for _ in range(150):
                if (await progress(services, broadcast_id))["state"] == "done":
                    break
                await asyncio.sleep(0.2)
            assert (await progress(services, broadcast_id))["sent"] == 1
            await resident.send("你好")
            assert "开学了，当心“刷单返利”" in resident.text and UNSUBSCRIBE in resident.text
    finally:
        out = server.stop()
    assert "Traceback" not in out


async def test_village_cadres_relay_a_warning_and_the_silent_one_is_reminded_once(
        services: Services, telegram: FakeTelegram, bot: Bot) -> None:
    services = with_broadcasts(services, relay_remind_minutes=0.001)
    engine = Engine(services)
    async with services.db.transaction() as session:
        nanguan = await relay.add(session, services.settings, name="王村长", village="chengguan-nanguan",
                                  channel="telegram", user="9001")
        await relay.add(session, services.settings, name="李网格员", village="chengguan-nanguan",
                        channel="telegram", user="9002")
        await relay.add(session, services.settings, name="河口村干部", village="hekou-hekou",
                        channel="telegram", user="9003")  # not in this warning's township
    assert nanguan.id
    broadcast_id = await drafted(services, townships=["chengguan"], channels=["relay"])
    await approved(services, broadcast_id)
    d = dispatcher(services, bot)
    await drain(d)
    handed = telegram.messages_to(9001)
    assert len(handed) == 1 and "【请转发到村里的微信群】" in handed[0]["plain_text"]
    assert UNSUBSCRIBE not in handed[0]["plain_text"]  # for the village group, not a subscriber
    button = handed[0]["reply_markup"]["inline_keyboard"][0][0]
    assert (button["text"], button["callback_data"]) == ("已转发到村群", f"/relayed {broadcast_id}")
    assert telegram.texts_to(9003) == []
    shown = await progress(services, broadcast_id)
    assert shown["skipped"] == {"no-cadre": 2}  # 城关镇's other villages have no cadre
    nanguan_row = next(r for r in shown["relay"] if r["village"] == "chengguan-nanguan")
    assert (nanguan_row["cadres"], nanguan_row["relayed"]) == (2, 0)

    # the cadre taps the button (the adapter hands its data over as text); a second tap changes nothing
    tap = Inbound(channel="telegram", user="9001", chat="9001", text=f"/relayed {broadcast_id}")
    assert "已转发到村群" in (await engine.handle(tap))[0].text
    assert "已经记过了" in (await engine.handle(tap))[0].text
    stranger = Inbound(channel="telegram", user="9555", chat="9555", text=f"已转发 {broadcast_id}")
    assert "没有找到" in (await engine.handle(stranger))[0].text
    nanguan_row = next(r for r in (await progress(services, broadcast_id))["relay"]
                       if r["village"] == "chengguan-nanguan")
    assert nanguan_row["relayed"] == 1 and nanguan_row["first_relayed_at"]

    # the one who did not say so is reminded, once, however often the leader looks
    await asyncio.sleep(0.1)
    for _ in range(3):
        async with services.db.transaction() as session:
            await lifecycle.advance(session, services.settings, utcnow())
    await drain(d)
    assert len(telegram.texts_to(9002)) == 2 and "还没转发" in telegram.texts_to(9002)[1]
    assert len(telegram.texts_to(9001)) == 1


async def test_township_staff_groups_get_it_through_their_wecom_robot(services: Services, telegram: FakeTelegram,
                                                                       bot: Bot) -> None:
    with FakeWeComRobot() as fake:
        services = with_broadcasts(services, township_robots={"chengguan": fake.url})
        robot = WeComRobot(fake.url)
        try:
            broadcast_id = await drafted(services, channels=["wecom"])  # the whole county: three townships
            async with services.db.session() as session:
                preview = await segments.preview(session, services.settings,
                                                 await session.get(Broadcast, broadcast_id))
            assert (preview["routes"], preview["skipped"]) == ({"warn-wecom": 1}, {"no-robot": 2})  # 河口乡, 青山镇
            await approved(services, broadcast_id)
            d = dispatcher(services, bot, extra={"warn-wecom": warning_senders.wecom({"chengguan": robot})})
            await drain(d)
            await drain(d)
        finally:
            await robot.close()
        texts = [m["content"] for m in fake.received]
        assert texts == ["【预警提示·请转告各村】\n【防非提醒】有人办讲座让老人交钱。请不要交钱。"]
        shown = await progress(services, broadcast_id)
        assert (shown["routes"], shown["skipped"]) == ({"warn-wecom": {"sent": 1}}, {"no-robot": 2})


async def test_wechat_subscribers_get_it_inside_the_48_hours_and_as_a_notice_after(services: Services) -> None:
    async with FakeWeChat() as fake:
        wechat = WeChatSettings(token="t", app_id=fake.appid, app_secret=fake.secret, api_base_url=fake.api_base_url)
        services = with_broadcasts(services)
        services = dataclasses.replace(services, settings=services.settings.model_copy(update={"wechat": wechat}))
        api = WeChatApi(wechat, services.db)
        try:
            async with services.db.transaction() as session:
                for openid in ("o-here", "o-gone"):
                    await subscribers.subscribe(session, "wechat", openid, "elderly", None, None)
            fake.user_wrote("o-here")  # wrote within 48 hours; o-gone did not
            broadcast_id = await drafted(services, channels=["wechat"])
            await approved(services, broadcast_id)
            d = Dispatcher(services.db, {"warn-wechat": warning_senders.wechat(api, services.db, services.vault)})
            await drain(d)
        finally:
            await api.close()
        assert fake.texts_to("o-here") == [f"【防非提醒】有人办讲座让老人交钱。请不要交钱。\n\n{UNSUBSCRIBE}"]
        assert fake.texts_to("o-gone") == []
    shown = await progress(services, broadcast_id)
    assert (shown["sent"], shown["unreachable"], shown["routes"]) == (1, 1, {"warn-wechat": {"sent": 1,
                                                                                               "unreachable": 1}})
    # the one outside the window reads it at their next message, and "退订" from it works
    engine = Engine(services)
    replies = await engine.handle(Inbound(channel="wechat", user="o-gone", chat="o-gone", text="你好"))
    assert "有人办讲座让老人交钱" in " ".join(r.text for r in replies)
    replies = await engine.handle(Inbound(channel="wechat", user="o-gone", chat="o-gone", text="退订"))
    assert "已经退订" in " ".join(r.text for r in replies)
