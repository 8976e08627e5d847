"""Tips (举报): a short guided report, one question a message, then a receipt; and the reporter's status query.

The draft lives in the conversation (so a restart resumes it); the reporter's name and phone are sealed the
moment they arrive and never shown back in full.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.conversation import ACTIONS, RECOGNISERS, Choice, Flow, Turn, action, keywords, register_flow
from bot.storage.models import Tip
from bot.tips import alerts, evidence, ledger
from bot.types import Media
from bot.vault import Vault
from handlers.menu import BACK, MAIN_MENU
from knowledge.text import normalize

FLOW = "report"
# FF-2026-000123, also as typed: ff2026000123, FF 2026 000123, full-width (matched after normalising)
RECEIPT = re.compile(r"(?<![a-z0-9])ff[-_ ]?(\d{4})[-_ ]?(\d{6})(?!\d)", re.IGNORECASE)
PHONE = re.compile(r"^(1\d{10}|0\d{2,3}\d{7,8})$")
MEDIA_CHANNELS = {"telegram", "wechat"}  # where residents can send photos and files

CANCEL = Choice("取消举报", "report.cancel")
SUBMIT = "确认提交"
SKIP = Choice("跳过", "report.skip")
TO_ANONYMOUS = Choice("改为匿名", "report.identity", "anonymous")
PARTS = (("what", "发生了什么"), ("who", "涉及对象"), ("where", "地点"), ("money", "金额和人数"),
         ("when", "时间"), ("evidence", "证据"), ("identity", "实名或匿名"))
STATUS_WORDS = {"new": "已收到，等待核查", "verifying": "正在核查", "referred": "已移交有关部门处理",
                "closed": "已办结"}
REASON_WORDS = {"confirmed": "线索经核查属实，已依法处理。感谢您！",
                "not-confirmed": "经核查，暂未发现违法问题。",
                "duplicate": "这条线索和已有线索重复，已一并处理。",
                "out-of-scope": "经核查不属于非法集资，已转给相关部门。"}


def receipt_in(text: str) -> str | None:
    """The receipt number a text names, written as the ledger writes it (FF-2026-000123), or None."""
    found = RECEIPT.search(normalize(text))
    return f"FF-{found.group(1)}-{found.group(2)}" if found else None


# -- the questions ------------------------------------------------------------------------------------------------
def _steps(turn: Turn) -> list[str]:
    steps = [name for name, _ in PARTS]
    if turn.inbound.channel not in MEDIA_CHANNELS:
        steps.remove("evidence")
    return steps


def _ask(turn: Turn, step: str) -> None:
    """Put the user at `step` and ask its question."""
    number = _steps(turn).index(step) + 1
    turn.go(FLOW, step)
    if step == "what":
        turn.say(f"第{number}步：发生了什么？\n请用几句话说说。比如：谁让您投钱，许诺了什么回报。", [CANCEL])
    elif step == "who":
        turn.say(f"第{number}步：是哪家公司、哪个App、哪个人或网站？\n不知道可以跳过。", [SKIP, CANCEL])
    elif step == "where":
        towns = turn.services.settings.region.townships
        turn.say(f"第{number}步：在哪里？\n请选乡镇，也可以直接写地点。",
                 [*(Choice(t.name, "report.township", str(i)) for i, t in enumerate(towns)), SKIP, CANCEL])
    elif step == "money":
        turn.say(f"第{number}步：大概涉及多少钱、多少人？\n比如“投了5万，村里十几个人”。不清楚可以跳过。",
                 [SKIP, CANCEL])
    elif step == "when":
        turn.say(f"第{number}步：这是什么时候的事？\n比如“上个月”“今年3月”。不清楚可以跳过。", [SKIP, CANCEL])
    elif step == "evidence":
        have = len(turn.data.get("evidence", []))
        turn.say(f"第{number}步：有照片、截图或文件吗？\n请直接发过来，可以发几张。"
                 + (f"（已收到 {have} 件）" if have else ""), [Choice("没有了，下一步", "report.skip"), CANCEL])
    elif step == "identity":
        turn.say(f"第{number}步：您想实名还是匿名？\n"
                 "· 实名：留姓名和电话。线索查实后，可以申请奖励（最高{reward_max}）。\n"
                 "· 匿名：不留姓名，一样认真核查，但不能领奖励。\n"
                 "您的身份依法保密，不会告诉任何无关的人。",
                 [Choice("实名", "report.identity", "named"), Choice("匿名", "report.identity", "anonymous"), CANCEL])


def _next(turn: Turn, done: str) -> None:
    """After a step: back to the summary when editing, else the next question (or the summary at the end)."""
    if turn.data.get("editing"):
        _summary(turn)
        return
    steps = _steps(turn)
    later = steps[steps.index(done) + 1:] if done in steps else []
    if later:
        _ask(turn, later[0])
    else:
        _summary(turn)


def _private_only(turn: Turn) -> bool:
    """Reports and their status are never handled in a group, where others would read them."""
    if not turn.inbound.is_group:
        return True
    turn.say("为了保护您，举报和查询举报请私聊我。\n点我的头像，发“举报”就行。")
    return False


@action("report.start")
async def start(turn: Turn, _: str = "") -> None:
    if not _private_only(turn):
        return
    turn.finish()
    turn.go(FLOW, "what", started=datetime.now(UTC).isoformat(), evidence=[])
    turn.say("谢谢您愿意举报！大约两分钟就能填完。\n您的身份依法保密。随时发“取消”可以退出。")
    _ask(turn, "what")


@action("report.police")
async def police(turn: Turn, _: str = "") -> None:
    """"报警" / "我要报案": a resident who wants the police gets the police first, then the tip line here."""
    turn.say("想报案，就打 {police}，或者去附近的派出所。\n带上合同、收据、转账和聊天记录。")
    choices = [Choice("我要举报", "report.start"), Choice("问问题", "ask.start"), BACK]
    here = turn.tap("我要举报", choices)
    turn.say(f"也可以向{{office}}举报，电话 {{office_phone}}，身份保密。\n想在这里举报，请{here}。", choices)


async def answer(turn: Turn, text: str) -> None:
    """The user's own words at a step that waits for them."""
    limit = turn.services.settings.tips.max_text_chars
    if len(text) > limit:
        text = text[:limit]
        turn.say(f"内容有点长，我只记下了前 {limit} 个字。")
    step = turn.step or ""
    if step == "what":
        if len(text) < 4:
            turn.say("请多写几个字，说说发生了什么。比如：“有人让我投钱，说每月返10%”。", [CANCEL])
            return
        turn.go(FLOW, step, what=text)
    elif step in ("who", "money", "when"):
        turn.go(FLOW, step, **{step: text[:200] if step != "who" else text})
    elif step in ("where", "village"):
        turn.go(FLOW, "where", place=text[:200], **({} if step == "village" else {"township": None, "village": None}))
        step = "where"
    elif step == "name":
        turn.go(FLOW, "name", name=turn.services.vault.seal(text[:30]))
        turn.go(FLOW, "contact")
        turn.say("请留一个电话，方便工作人员联系您。", [TO_ANONYMOUS, CANCEL])
        return
    elif step == "contact":
        phone = re.sub(r"[\s\-－()（）+]", "", text)
        phone = phone[2:] if phone.startswith("86") and len(phone) == 13 else phone
        if not PHONE.match(phone):
            turn.say("这个号码好像不对。请再发一次，比如 13800138000。不想留电话，可以改为匿名。",
                     [TO_ANONYMOUS, CANCEL])
            return
        turn.go(FLOW, "contact", contact=turn.services.vault.seal(phone), anonymous=False)
        step = "identity"
    elif step == "evidence":
        choices = [Choice("没有了，下一步", "report.skip"), CANCEL]
        turn.say(f"这一步请发照片或文件。没有的话，请{turn.tap('没有了，下一步', choices)}。", choices)
        return
    _next(turn, step)


@action("report.skip")
async def skip(turn: Turn, _: str = "") -> None:
    step = turn.step or ""
    if turn.flow != FLOW or step not in ("who", "where", "village", "money", "when", "evidence"):
        await expired_step(turn)
        return
    _next(turn, "where" if step == "village" else step)


@action("report.township")
async def township(turn: Turn, index: str) -> None:
    towns = turn.services.settings.region.townships
    if turn.flow != FLOW or not index.isdigit() or int(index) >= len(towns):
        await expired_step(turn)
        return
    town = towns[int(index)]
    turn.go(FLOW, "village", township=town.name, village=None, place=None)
    if not town.villages:
        _next(turn, "where")
        return
    turn.say(f"在{town.name}的哪个村（社区）？也可以直接写具体地点。",
             [*(Choice(v, "report.village", v) for v in town.village_names), SKIP, CANCEL])


@action("report.village")
async def village(turn: Turn, name: str) -> None:
    if turn.flow != FLOW:
        await expired_step(turn)
        return
    turn.go(FLOW, "where", village=name or None)
    _next(turn, "where")


@action("report.identity")
async def identity(turn: Turn, choice: str) -> None:
    if turn.flow != FLOW:
        await expired_step(turn)
        return
    if choice == "named":
        turn.go(FLOW, "name")
        turn.say("请告诉我您的姓名。", [TO_ANONYMOUS, CANCEL])
        return
    turn.go(FLOW, "identity", anonymous=True, name=None, contact=None)
    _next(turn, "identity")


async def attach(turn: Turn) -> None:
    """Photos and files sent during a report are kept with it (within the size and number limits)."""
    cfg = turn.services.settings.tips
    kept: list[dict[str, Any]] = list(turn.data.get("evidence", []))
    for media in turn.inbound.media:
        if len(kept) >= cfg.max_files:
            turn.say(f"最多可以交 {cfg.max_files} 件证据，后面的没有收下。")
            break
        if media.size is not None and media.size > cfg.max_file_mb * 1024 * 1024:
            turn.say(f"这个文件太大了（超过 {cfg.max_file_mb:g}MB），没有收下。可以发小一点的。")
            continue
        kept.append(_evidence_of(media))
    turn.go(FLOW, turn.step or "evidence", evidence=kept)
    if turn.step == "evidence":
        choices = [Choice("下一步", "report.skip"), CANCEL]
        turn.say(f"收到了，已有 {len(kept)} 件证据。\n还有就接着发，没有了就{turn.tap('下一步', choices)}。", choices)
    else:  # sent early: keep it, and ask the current question again
        turn.say(f"收到了，已有 {len(kept)} 件证据，会和举报一起提交。")
        await resume(turn)


def _evidence_of(media: Media) -> dict[str, Any]:
    return {"kind": media.kind, "ref": media.ref, "url": media.url, "name": (media.name or "")[:200] or None,
            "size": media.size}


@action("report.resume")
async def carry_on(turn: Turn, _: str = "") -> None:
    """“继续”: back to where the report stopped (after a reminder), or the menu when there is none."""
    if turn.flow != FLOW:
        turn.say("现在没有没填完的举报。请选择：", MAIN_MENU)
        return
    await resume(turn)


async def resume(turn: Turn) -> None:
    """Ask the question of the step the user is at again (after something unexpected)."""
    step = turn.step or "what"
    if step == "summary":
        _summary(turn)
    elif step == "name":
        turn.say("请告诉我您的姓名。", [TO_ANONYMOUS, CANCEL])
    elif step == "contact":
        turn.say("请留一个电话，方便工作人员联系您。", [TO_ANONYMOUS, CANCEL])
    elif step == "village":
        turn.say("请在上面选村（社区），或者直接写具体地点。", [SKIP, CANCEL])
    else:
        _ask(turn, step)


UNUSABLE = {
    "text": "这条消息我没看懂，请用文字回答。",
    "voice": "这段语音我没听清，请打字回答。",
    "other": "这种消息我看不懂，请打字回答。照片和文件可以直接发。",
}


async def unusable(turn: Turn, kind: str) -> None:
    """Something the report cannot use (only emoji, a voice note without words, a location …): say so and ask
    the question of the step again."""
    turn.say(UNUSABLE.get(kind, UNUSABLE["other"]))
    await resume(turn)


async def expired_step(turn: Turn) -> None:
    if turn.flow == FLOW:
        turn.say("这个选项已经过期了。我们接着填：")
        await resume(turn)
    else:
        turn.say("这个选项已经过期了。请在下面重新选择。", MAIN_MENU)


# -- leaving an unfinished report -------------------------------------------------------------------------------
WITHIN_REPORT = {"menu.cancel", "menu.help"}  # actions outside report.* that do not leave the report


def stays_in_report(name: str) -> bool:
    return name in WITHIN_REPORT or (name.startswith("report.") and name != "report.start")


async def confirm_leave(turn: Turn, target: str, arg: str = "") -> None:
    """Something else was asked for (菜单, 问问题, a button of an older menu …) in the middle of a report: ask first."""
    turn.say("您的举报还没提交。\n要接着填，还是放弃这次举报？",
             [Choice("接着填", "report.resume"), Choice("放弃举报", "report.leave", f"{target}|{arg}")])


@action("report.leave")
async def leave(turn: Turn, target: str) -> None:
    name, _, arg = target.partition("|")
    if turn.flow == FLOW:
        turn.finish()
        turn.say("好的，这次的举报已经放弃。")
    await ACTIONS.get(name, ACTIONS["menu.main"])(turn, arg)


# -- summary, edit, cancel, submit ------------------------------------------------------------------------------
def _masked_name(turn: Turn, sealed: str) -> str:
    name = turn.services.vault.open(sealed)
    return name[0] + "*" * max(1, len(name) - 1)


def _masked_phone(turn: Turn, sealed: str) -> str:
    phone = turn.services.vault.open(sealed)
    return phone[:3] + "****" + phone[-4:]


def _summary(turn: Turn) -> None:
    d = turn.data
    turn.go(FLOW, "summary", editing=False)
    place = " ".join(p for p in (d.get("township"), d.get("village"), d.get("place")) if p)
    if d.get("anonymous", True) or not d.get("name"):
        who_am_i = "匿名"
    else:
        who_am_i = f"实名（{_masked_name(turn, d['name'])}，{_masked_phone(turn, d['contact'])}）"
    lines = ["请核对您的举报：", f"· 发生了什么：{d.get('what', '')}", f"· 涉及对象：{d.get('who') or '未填'}",
             f"· 地点：{place or '未填'}", f"· 金额和人数：{d.get('money') or '未填'}",
             f"· 时间：{d.get('when') or '未填'}"]
    if turn.inbound.channel in MEDIA_CHANNELS:
        lines.append(f"· 证据：{len(d.get('evidence', []))} 件")
    lines.append(f"· 身份：{who_am_i}")
    turn.say("\n".join(lines))
    choices = [Choice(SUBMIT, "report.submit"), Choice("修改", "report.edit"), CANCEL]
    turn.say(f"没问题就{turn.tap(SUBMIT, choices)}。", choices)


@action("report.edit")
async def edit(turn: Turn, _: str = "") -> None:
    if turn.flow != FLOW:
        await expired_step(turn)
        return
    parts = [(k, label) for k, label in PARTS if k in _steps(turn)]
    turn.say("要改哪一项？", [*(Choice(label, "report.redo", k) for k, label in parts),
                          Choice("不改了，返回核对", "report.review")])


@action("report.redo")
async def redo(turn: Turn, step: str) -> None:
    if turn.flow != FLOW or step not in _steps(turn):
        await expired_step(turn)
        return
    turn.go(FLOW, step, editing=True)
    _ask(turn, step)


@action("report.review")
async def review(turn: Turn, _: str = "") -> None:
    if turn.flow != FLOW:
        await expired_step(turn)
        return
    _summary(turn)


@action("report.cancel")
async def cancel(turn: Turn, _: str = "") -> None:
    """The 取消举报 button: one tap (or one digit on WeChat) is easy to hit by mistake, so ask first."""
    if turn.flow != FLOW:
        turn.say("现在没有要取消的举报。请选择：", MAIN_MENU)
        return
    turn.say("确定要放弃这次举报吗？填写的内容会删除。",
             [Choice("确定放弃", "report.cancelled"), Choice("接着填", "report.resume")])


@action("report.cancelled")
async def cancelled(turn: Turn, _: str = "") -> None:
    if turn.flow == FLOW:
        turn.finish()
        turn.say("已取消。这次填写的内容已经删除。")
    turn.say("想举报随时再来。请选择：", MAIN_MENU)


@action("report.submit")
async def submit(turn: Turn, _: str = "") -> None:
    if turn.flow != FLOW or turn.step != "summary" or not turn.data.get("what"):
        await expired_step(turn)
        return
    services, inbound, d = turn.services, turn.inbound, turn.data
    reporter = ledger.reporter_of(services.vault, inbound.channel, inbound.user)
    earlier = await ledger.duplicate_of(turn.session, ledger.content_fingerprint(reporter, d["what"]))
    if earlier is not None:
        turn.finish()
        turn.say(f"这条线索您已经提交过了，受理编号是 {earlier.receipt}。\n不用重复提交，我们会认真核查。",
                 [Choice("查询进度", "report.status", earlier.receipt), BACK])
        return
    cap = services.settings.tips.max_per_day
    if await ledger.filed_today(turn.session, reporter) >= cap:
        turn.say(f"24小时内最多提交 {cap} 条线索，您已经提交了 {cap} 条。\n"
                 f"这条内容先替您保存一天，过些时候再{turn.tap(SUBMIT)}。急事请打 {{office_phone}}。",
                 [Choice(SUBMIT, "report.submit"), CANCEL])
        return
    tips_here = services.limits.address_tips
    if inbound.origin and tips_here.full(inbound.origin):  # many tips from one network address: a flood
        turn.say("这会儿从您这里提交的举报太多了。\n"
                 f"内容先替您保存着，请过一个小时再{turn.tap(SUBMIT)}。急事请打 {{office_phone}}。",
                 [Choice(SUBMIT, "report.submit"), CANCEL])
        return
    named = not d.get("anonymous", True) and bool(d.get("name"))
    vault = services.vault
    report = ledger.Report(
        what=d["what"], who=d.get("who"), township=d.get("township"), village=d.get("village"), place=d.get("place"),
        money=d.get("money"), happened=d.get("when"), anonymous=not named,
        name=vault.open(d["name"]) if named else None, contact=vault.open(d["contact"]) if named else None,
        evidence=[ledger.Evidence(**e) for e in d.get("evidence", [])])
    postgres = not services.db.is_sqlite
    found = services.search(d["what"])
    category = found.best.entry.category if found.matched and found.best else services.risk.check(d["what"]).category
    tip = await ledger.file(turn.session, vault, inbound.channel, inbound.user, report, category, postgres)
    await alerts.announce(turn.session, services.settings, tip, len(report.evidence), postgres)
    await evidence.queue_fetches(turn.session, tip, postgres)  # platforms keep files only a while: fetch and seal
    if inbound.origin:
        tips_here.count(inbound.origin)
    turn.finish()
    turn.say(f"提交成功！受理编号：{tip.receipt}\n请记下这个编号，查进度时要用。")
    turn.say("接下来，工作人员会尽快核查，有进展会告诉您。\n"
             f"想查进度，发“查询举报 {tip.receipt}”。如果对方还在催您交钱，请先别交。",
             [Choice("查询进度", "report.status", tip.receipt), BACK])


def expire_stale(turn: Turn) -> bool:
    """A draft older than `tips.draft_hours` is dropped, and the user told so; True when that happened."""
    started = turn.data.get("started")
    hours = turn.services.settings.tips.draft_hours
    if turn.flow != FLOW or not started or datetime.fromisoformat(started) + timedelta(hours=hours) > datetime.now(UTC):
        return False
    turn.finish()
    turn.say(f"您上次没填完的举报已经超过 {hours:g} 小时，已经删除了。需要的话可以重新填。")
    return True


# -- the reporter asks about a tip --------------------------------------------------------------------------------
@action("report.status")
async def status(turn: Turn, receipt: str = "") -> None:
    if not _private_only(turn):
        return
    in_report = turn.flow == FLOW  # asked in the middle of a report: answer, then carry on with it
    number = receipt_in(receipt or "")
    if number is None:
        if in_report:
            await resume(turn)
            return
        turn.go("status", "receipt")
        turn.say("请发您的受理编号，比如 FF-2026-000123。", [BACK])
        return
    if not in_report:
        turn.finish()
    inbound = turn.inbound
    tip = await ledger.for_reporter(turn.session, turn.services.vault, inbound.channel, inbound.user, number)
    if tip is None:  # not found, or filed by someone else: the same answer, so nothing leaks
        if in_report:
            turn.say("没有找到这个编号的举报。请核对编号。只能查询您自己提交的举报。")
            await resume(turn)
            return
        turn.say("没有找到这个编号的举报。\n请核对编号。只能查询您自己提交的举报。",
                 [Choice("重新输入编号", "report.status"), BACK])
        return
    lines = [f"受理编号：{tip.receipt}", f"提交时间：{_local_date(tip.created_at)}",
             f"进度：{STATUS_WORDS.get(tip.status, tip.status)}"]
    if tip.status == "closed" and tip.closing_reason in REASON_WORDS:
        lines.append(REASON_WORDS[tip.closing_reason])
    turn.say("\n".join(lines))
    if in_report:
        await resume(turn)
        return
    turn.say("有新情况可以再举报。急事请打 {office_phone}。", [Choice("我要举报", "report.start"), BACK])


NEXT_STEPS = {
    "verifying": "有新的情况，可以打{office}电话 {office_phone}。",
    "referred": "后续由承办部门跟进。有新情况可以继续告诉我们，或打{office}电话 {office_phone}。",
    "closed": "感谢您的举报！对结果有疑问，可以打{office}电话 {office_phone}。",
}


def status_text(receipt: str, status_: str, reason: str | None) -> str:
    """What the reporter is told when staff change a tip's status ({placeholders} for the region's facts)."""
    lines = [f"您的举报 {receipt} 有新进展：{STATUS_WORDS.get(status_, status_)}。"]
    if status_ == "closed" and reason in REASON_WORDS:
        lines.append(REASON_WORDS[reason])
    lines.append(NEXT_STEPS.get(status_, "") + f"想看详情，发“查询举报 {receipt}”。")
    return "\n".join(lines)


async def tell_status(session: AsyncSession, settings: Settings, vault: Vault, tip: Tip, postgres: bool) -> str:
    """Tell the reporter a tip's new status (in the staff change's own transaction); the text told."""
    text = status_text(tip.receipt, tip.status, tip.closing_reason).format_map(settings.region.placeholders())
    await alerts.tell_reporter(session, settings, vault, tip, text, postgres)
    return text


def _local_date(at: datetime) -> str:
    return ledger.as_utc(at).astimezone(ledger.CHINA).strftime("%Y-%m-%d")


STATUS_QUERY = ("查询举报", "查举报", "/status", "举报进度", "查询")  # followed by a receipt, with or without a space


async def status_query(turn: Turn, words: str) -> bool:
    """A receipt number on its own, or after 查询举报: the reporter asks about their tip."""
    found = RECEIPT.search(words)
    if found and (words.startswith(STATUS_QUERY) or words.replace(" ", "") == found.group(0).replace(" ", "")):
        await status(turn, receipt_in(words) or "")
        return True
    return False


register_flow(Flow(
    FLOW, text_steps=dict.fromkeys(("what", "who", "where", "village", "money", "when", "evidence", "name",
                                    "contact"), answer),
    button_steps=frozenset({"identity", "summary"}), resume=resume, stays=stays_in_report,
    confirm_leave=confirm_leave, expired=expired_step, unusable=unusable, attach=attach, expire=expire_stale))
register_flow(Flow("status", text_steps={"receipt": status}))
RECOGNISERS.append(status_query)
keywords("report.start", "我要举报", "举报", "/report", "举报线索", "怎么举报", "如何举报", "在哪举报", "去哪举报",
         "我想举报", "怎样举报")
keywords("report.police", "报警", "我要报警", "怎么报警", "报案", "我要报案", "怎么报案", "去哪报案", "在哪报案",
         "我想报案", "报案电话")
keywords("report.status", "查询举报", "查举报", "/status", "举报进度")
keywords("report.resume", "继续", "接着填", "/continue")
