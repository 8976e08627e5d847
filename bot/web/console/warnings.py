"""The warnings pages (预警提示): compose from a template or free text, pick the segment with live recipient counts,
send now or at a time, approval by a second person, live progress, pause / resume / cancel / retry failed, the
village relay's coverage and the delivery report. Everything goes through bot/broadcasts, as the CLI does."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from bot.broadcasts import lifecycle, mass, segments
from bot.broadcasts import report as delivery_report
from bot.broadcasts.lifecycle import BroadcastError
from bot.staff import accounts
from bot.storage.models import Broadcast
from bot.tips.export import local_time
from bot.tips.ledger import china_time
from bot.web.console.auth import NO_STORE, Desk, base, clean, row_id, spreadsheet
from knowledge import warnings as warning_templates

AUDIENCE_NAMES = {"elderly": "老年人", "student": "学生", "other": "其他居民", "all": "所有人"}
CHANNEL_NAMES = {"telegram": "Telegram", "wechat": "微信公众号", "web": "网页", "local": "本地",
                 "wecom": "乡镇工作群（企业微信）", "relay": "村干部转发到村群"}
STATE_NAMES = {"draft": "待批准", "approved": "已批准，等待发送时间", "sending": "发送中", "paused": "已暂停",
               "done": "已发完", "cancelled": "已取消"}
STEPS = {"pause": lifecycle.pause, "resume": lifecycle.resume, "cancel": lifecycle.cancel}


def _templates(desk: Desk) -> dict[str, warning_templates.Template]:
    found, _ = warning_templates.load(region_keys=set(desk.settings.region.placeholders()))
    return found


def _when(text: str) -> datetime | None:
    try:
        return china_time(text) if text else None
    except ValueError as exc:
        raise BroadcastError("the time is not a date and time") from exc


def _drafted(desk: Desk, form: FormData) -> dict[str, Any]:
    """The draft the form describes, checked against the account's townships."""
    towns = [str(t) for t in form.getlist("township")]
    villages = [str(v) for v in form.getlist("village")]
    if desk.townships is not None:
        if not towns and not villages:
            raise BroadcastError("pick your townships: a county-wide warning is for county staff")
        village_towns = {v.code: t.code for t in desk.settings.region.townships for v in t.villages}
        if not accounts.owns(desk.townships, [*towns, *(village_towns.get(v, "") for v in villages)]):
            raise BroadcastError("only your own townships")
    template = clean(form.get("template"), 64) or None
    text = str(form.get("text") or "").strip() or None
    body = lifecycle.compose(desk.settings, text=None if template else text, template=template,
                             township=towns[0] if towns else None, company=clean(form.get("company"), 40) or None)
    return {"text": body, "template": template, "audience": clean(form.get("audience"), 16), "townships": towns,
            "villages": villages, "channels": [str(c) for c in form.getlist("channel")],
            "send_at": _when(clean(form.get("at"), 32)), "urgent": form.get("urgent") == "1"}


def _plain(message: str) -> str:
    """A lifecycle refusal in the console's words."""
    for key, words in (("drafter cannot approve", "起草人不能批准自己起草的预警，请另一位审批人批准。"),
                       ("not an approver", "您的账号没有批准预警的权限。"),
                       ("either a text or a template", "请写预警内容，或选一个模板。"),
                       ("text is empty", "预警内容是空的。"), ("characters; at most", "预警内容太长了，请精简。"),
                       ("needs --", "这个模板需要填写乡镇或公司名称。"), ("no template", "没有这个模板。"),
                       ("audience", "请选择发给谁。"), ("channels", "请至少选择一个渠道。"),
                       ("county-wide", "请选择您负责的乡镇：全县范围的预警由县里发。"),
                       ("only your own", "只能给您负责的乡镇发预警。"), ("not a township", "请选择列表里的乡镇或村。"),
                       ("not a date", "发送时间看不懂，请重新选择。"), ("not a draft", "这条预警已经不是草稿了。"),
                       ("only a draft", "只有草稿可以修改。"), ("nothing to pause", "现在没有可暂停的发送。"),
                       ("not paused", "这条预警没有暂停。"), ("already", "这条预警已经结束了。"),
                       ("nothing to retry", "现在没有可以重发的。"),
                       ("quota used up", "本期的微信群发次数用完了，请下个周期再发，或直接发给订阅的居民。")):
        if key in message:
            return words
    return "这个操作现在不能做。"


async def listing(desk: Desk, problem: str | None = None, status: int = 200) -> Response:
    rows = [b for b in await desk.session.scalars(select(Broadcast).order_by(Broadcast.id.desc()).limit(200))
            if segments.visible_to(desk.settings, b, desk.townships)]
    townships = desk.own_townships()
    quota = await mass.quota(desk.session, desk.settings) if desk.settings.wechat.can_send else None
    return desk.page("warnings.html", status, rows=rows, templates=_templates(desk), townships=townships,
                     audiences=AUDIENCE_NAMES, channels=CHANNEL_NAMES, states=STATE_NAMES, problem=problem,
                     local_time=local_time, quota=quota)


async def preview(desk: Desk) -> Response:
    """The live recipient counts of the form as it stands (htmx, on every change)."""
    form = desk.request.state.form or FormData()
    try:
        draft = _drafted(desk, form)
        if draft["audience"] not in segments.AUDIENCES:
            raise BroadcastError("audience")
    except BroadcastError as exc:
        return desk.page("warning_counts.html", counts=None, problem=_plain(str(exc)))
    transient = Broadcast(audience=draft["audience"], segment={k: draft[k] for k in ("townships", "villages",
                                                                                      "channels")}, text=draft["text"])
    counts = await segments.preview(desk.session, desk.settings, transient)
    return desk.page("warning_counts.html", counts=counts, text=draft["text"], reasons=segments.REASONS,
                     problem=None)


async def create(desk: Desk) -> Response:
    form = desk.request.state.form or FormData()
    try:
        draft = _drafted(desk, form)
        made = await lifecycle.create(desk.session, desk.settings, drafted_by=desk.account.name, **draft)
    except BroadcastError as exc:
        return await listing(desk, problem=_plain(str(exc)), status=400)
    return RedirectResponse(f"{base(desk.request)}/warnings/{made.id}", status_code=303, headers=NO_STORE)


async def _visible(desk: Desk) -> Broadcast | None:
    number = row_id(desk.request.path_params["id"])
    found = await desk.session.get(Broadcast, number) if number is not None else None
    if found is None or not segments.visible_to(desk.settings, found, desk.townships):
        return None
    return found


def _missing(desk: Desk) -> Response:
    return desk.page("refused.html", 404, message="没有找到这条预警，或者它不在您负责的乡镇。")


async def show(desk: Desk, problem: str | None = None, status: int = 200) -> Response:
    broadcast = await _visible(desk)
    if broadcast is None:
        return _missing(desk)
    counts = (await segments.preview(desk.session, desk.settings, broadcast)
              if broadcast.state in ("draft", "approved") else None)
    return desk.page("warning.html", status, b=broadcast, counts=counts, reasons=segments.REASONS,
                     progress=await lifecycle.progress(desk.session, desk.settings, broadcast),
                     may_act=segments.within(desk.settings, broadcast, desk.townships),
                     may_approve=desk.may("approve") and broadcast.drafted_by != desk.account.name,
                     audiences=AUDIENCE_NAMES, channels=CHANNEL_NAMES, states=STATE_NAMES, problem=problem,
                     local_time=local_time)


async def progress(desk: Desk) -> Response:
    """The progress block alone, polled by htmx while the warning is sending."""
    broadcast = await _visible(desk)
    if broadcast is None:
        return _missing(desk)
    return desk.page("warning_progress.html", b=broadcast, states=STATE_NAMES,
                     progress=await lifecycle.progress(desk.session, desk.settings, broadcast))


async def act(desk: Desk) -> Response:
    broadcast = await _visible(desk)
    if broadcast is None:
        return _missing(desk)
    if not segments.within(desk.settings, broadcast, desk.townships):
        return await show(desk, problem="这条预警不只发给您负责的乡镇，请县里处理。", status=403)
    action = clean((desk.request.state.form or {}).get("action"), 16)
    name = desk.account.name
    try:
        locked = await lifecycle.named(desk.session, broadcast.id)
        if action == "approve":
            if not desk.may("approve"):
                return await show(desk, problem="您的账号没有批准预警的权限。", status=403)
            await lifecycle.approve(desk.session, desk.settings, locked, name)
        elif action in STEPS:
            await STEPS[action](desk.session, locked, name)
        elif action == "retry":
            await lifecycle.retry_failed(desk.session, locked, name)
        else:
            return await show(desk, problem="没有这个操作。", status=400)
    except BroadcastError as exc:
        await desk.undo()
        return await show(desk, problem=_plain(str(exc)), status=400)
    return RedirectResponse(f"{base(desk.request)}/warnings/{broadcast.id}", status_code=303, headers=NO_STORE)


async def report(desk: Desk) -> Response:
    broadcast = await _visible(desk)
    if broadcast is None:
        return _missing(desk)
    book = await delivery_report.build(desk.session, desk.settings, broadcast)
    return spreadsheet(book, f"warning-{broadcast.id}.xlsx")
