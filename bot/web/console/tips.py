"""The tip ledger (台账) pages: the list with filters and pages, a tip with its history, evidence and the staff
actions, the reveal of a reporter's identity (handlers, with a reason), the spreadsheet of the current filter."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.responses import RedirectResponse, Response

from bot.staff import audit
from bot.storage.models import Tip
from bot.tips import desk as tip_desk
from bot.tips import evidence, export, ledger, queries
from bot.tips.ledger import CHINA, CLOSING_REASONS, STATUSES, LedgerError
from bot.vault import SealError
from bot.web.console.auth import NO_STORE, Desk, base, clean, day, spreadsheet, whole
from knowledge.schema import load_taxonomy

MAX_PAGE = 10_000
RECEIPT = re.compile(r"[A-Za-z0-9-]{1,20}")


def tip_filter(desk: Desk, params: QueryParams) -> tuple[queries.TipFilter, list[str]]:
    """The filter the query string asks for, within the account's townships; and what was ignored as invalid."""
    ignored: list[str] = []
    status = params.get("status") or None
    if status is not None and status not in STATUSES:
        ignored.append("办理状态")
        status = None
    since, until = day(params.get("since")), day(params.get("until"))
    if params.get("since") and since is None:
        ignored.append("开始日期")
    if params.get("until") and until is None:
        ignored.append("结束日期")
    township = params.get("township") or None
    if township is not None and township not in [t.name for t in desk.settings.region.townships]:
        ignored.append("乡镇")
        township = None
    category = params.get("category") or None
    if category is not None and category not in load_taxonomy():
        ignored.append("类别")
        category = None
    assignee = clean(params.get("assignee"), 48) or None
    where = queries.TipFilter(status=status, since=since, until=until + timedelta(days=1) if until else None,
                              township=township, category=category, assignee=assignee,
                              overdue=params.get("overdue") == "1", scope=desk.scope)
    return where, ignored


def _page_number(params: QueryParams) -> int:
    number = whole(params.get("page"), 1) or 1
    return min(number, MAX_PAGE)


async def listing(desk: Desk) -> Response:
    params = desk.request.query_params
    where, ignored = tip_filter(desk, params)
    rules = desk.settings.console
    number = _page_number(params)
    total = await queries.count(desk.session, where, rules.overdue_days)
    pages = max(1, -(-total // rules.page_size))
    number = min(number, pages)
    tips = await queries.page(desk.session, where, rules.overdue_days, number, rules.page_size)
    kept = {k: v for k, v in params.items() if k != "page" and v}
    # htmx asks for the table alone; but for the whole page when it restores its history (Back, after a filter
    # pushed its URL: it keeps no cache of pages)
    headers = desk.request.headers
    partial = headers.get("hx-request") == "true" and headers.get("hx-history-restore-request") != "true"
    response = desk.page("tip_rows.html" if partial else "tips.html", tips=tips, total=total, number=number,
                         pages=pages, params=kept, query=urlencode(kept), ignored=ignored,
                         townships=_townships(desk), categories=load_taxonomy(), statuses=STATUSES,
                         overdue=lambda t: queries.is_overdue(t, rules.overdue_days), local_time=export.local_time,
                         status_name=export.status_name)
    response.headers["vary"] = "HX-Request, HX-History-Restore-Request"  # one URL, two answers
    return response


def _townships(desk: Desk) -> list[str]:
    names = [t.name for t in desk.settings.region.townships]
    return [n for n in names if desk.scope is None or n in desk.scope]


async def _visible(desk: Desk, receipt: str) -> Tip | None:
    """The tip, when this account may see it (another township's tip is "not found", as an unknown one)."""
    if not RECEIPT.fullmatch(receipt):
        return None
    tip = await ledger.find(desk.session, receipt)
    if tip is None or not queries.in_scope(tip, desk.scope):
        return None
    return tip


def _not_found(desk: Desk, receipt: str) -> Response:
    return desk.page("refused.html", 404,
                     message=f"没有找到受理编号 {clean(receipt, 20)} 的线索，或者它不在您负责的乡镇。")


async def show(desk: Desk, notice: str | None = None, problem: str | None = None, status: int = 200) -> Response:
    receipt = desk.request.path_params["receipt"]
    tip = await _visible(desk, receipt)
    if tip is None:
        return _not_found(desk, receipt)
    files = await ledger.evidence(desk.session, tip)
    return desk.page("tip.html", status, tip=tip, history=await ledger.history(desk.session, tip), files=files,
                     states=await evidence.fetch_states(desk.session, files), statuses=STATUSES,
                     reasons=CLOSING_REASONS, categories=load_taxonomy(), notice=notice, problem=problem,
                     overdue=queries.is_overdue(tip, desk.settings.console.overdue_days),
                     status_name=export.status_name, reason_name=export.reason_name, local_time=export.local_time)


async def update(desk: Desk) -> Response:
    receipt = desk.request.path_params["receipt"]
    tip = await _visible(desk, receipt)
    if tip is None:
        return _not_found(desk, receipt)
    form = desk.request.state.form or {}
    action = form.get("action", "")
    asked = {"take": tip_desk.Update(assignee=desk.account.name),
             "status": tip_desk.Update(status=form.get("status") or None, reason=form.get("reason") or None,
                                       note=form.get("note") or None),
             "note": tip_desk.Update(note=form.get("note") or None),
             "assign": tip_desk.Update(assignee=form.get("assignee") or None),
             "category": tip_desk.Update(category=form.get("category") or None)}.get(action)
    if asked is None:
        return await show(desk, problem="没有这个操作。请用页面上的按钮。", status=400)
    try:
        cleaned = asked.cleaned(list(load_taxonomy()))
        done = await tip_desk.apply(desk.session, desk.settings, desk.services.vault, tip, desk.actor, cleaned,
                                    postgres=not desk.services.db.is_sqlite)
    except LedgerError as exc:
        return await show(desk, problem=_plain(str(exc)), status=400)
    except SealError:
        await desk.undo()
        return await show(desk, problem="无法联系举报人（密钥不对），没有修改。请联系管理员。", status=500)
    notice = "told" if done.told else ("saved" if done.changes else "unchanged")
    return RedirectResponse(f"{base(desk.request)}/tips/{tip.receipt}?notice={notice}", status_code=303,
                            headers=NO_STORE)


NOTICES = {"saved": "已保存。", "unchanged": "没有变化。", "told": "已保存。已通知举报人新的办理状态。"}


def _plain(reason: str) -> str:
    """The ledger's reason, in the console's words."""
    if "only move forward" in reason:
        return "办理状态只能往前走（待核查 → 核查中 → 已移交 → 已办结）。"
    if "closing needs a reason" in reason or "closing reason" in reason:
        return "办结时请选择办结情况；只有办结时才填办结情况。"
    if "nothing to change" in reason:
        return "没有要修改的内容。"
    if "category" in reason:
        return "请选择列表里的线索类别。"
    if "note" in reason or "assignee" in reason:
        return "内容太长了，请精简后再保存。"
    return "这个修改不被允许。"


async def show_with_notice(desk: Desk) -> Response:
    return await show(desk, notice=NOTICES.get(desk.request.query_params.get("notice", "")))


async def reveal(desk: Desk) -> Response:
    """A handler asks who reported a tip, saying why; the page is private (never cached) and the reveal audited
    before it is shown."""
    receipt = desk.request.path_params["receipt"]
    tip = await _visible(desk, receipt)
    if tip is None:
        return _not_found(desk, receipt)
    reason = clean((desk.request.state.form or {}).get("reason"), 200)
    if len(reason) < 4:
        return await show(desk, problem="查看举报人身份，请先写明原因（至少 4 个字）。", status=400)
    if tip.anonymous:
        return await show(desk, problem="这是匿名线索，举报人没有留下姓名和联系方式。")
    try:
        identity = await ledger.reveal(desk.session, desk.services.vault, tip, desk.actor, reason)
    except SealError:
        await desk.undo()
        return await show(desk, problem="无法打开举报人身份（密钥不对）。请联系管理员。", status=500)
    await desk.session.commit()  # the audit row is written before anything is shown
    return desk.page("reveal.html", tip=tip, identity=identity, reason=reason)


async def evidence_file(desk: Desk) -> Response:
    receipt = desk.request.path_params["receipt"]
    tip = await _visible(desk, receipt)
    if tip is None:
        return _not_found(desk, receipt)
    files = await ledger.evidence(desk.session, tip)
    number = desk.request.path_params["number"]
    if not 1 <= number <= len(files):
        return _not_found(desk, receipt)
    item = files[number - 1]
    try:
        data = await evidence.content(desk.session, desk.services.vault, item)
    except SealError:
        return await show(desk, problem="无法打开这个文件（密钥不对）。请联系管理员。", status=500)
    if data is None:
        return await show(desk, problem="这个文件还没有取回，请稍后再试。", status=409)
    audit.record(desk.session, desk.actor, "export-evidence", tip.receipt, f"file {number}")
    await desk.session.commit()
    name = evidence.file_name(tip.receipt, number, item)
    return Response(data, media_type="application/octet-stream",
                    headers={"content-disposition": f'attachment; filename="{name}"', **NO_STORE})


async def export_xlsx(desk: Desk) -> Response:
    """The ledger spreadsheet of the current filter: the same workbook as `fangfei tips export` (no identities)."""
    where, _ = tip_filter(desk, desk.request.query_params)
    tips = await queries.matching(desk.session, where, desk.settings.console.overdue_days)
    book = await export.build(desk.session, tips)
    audit.record(desk.session, desk.actor, "export-tips", f"{len(tips)} tips", where.described())
    await desk.session.commit()
    stamp = datetime.now(CHINA).strftime("%Y%m%d-%H%M")
    return spreadsheet(book, f"tips-{stamp}.xlsx")
