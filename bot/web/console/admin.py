"""Admins' pages: the audit log with filters, and staff accounts (add, disable, enable, new password)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from starlette.responses import RedirectResponse, Response

from bot.staff import accounts, audit
from bot.tips.export import local_time
from bot.web.console.auth import NO_STORE, Desk, base, clean, day, whole

PAGE = 100
ACTION_NAMES = {"login": "登录", "login-failed": "登录失败", "logout": "退出", "reveal-identity": "查看举报人身份",
                "export-evidence": "下载证据", "export-tips": "导出台账", "tip-status": "改变办理状态",
                "broadcast-create": "起草预警", "broadcast-edit": "修改预警", "broadcast-approve": "批准预警",
                "broadcast-pause": "暂停预警", "broadcast-resume": "继续预警", "broadcast-cancel": "取消预警",
                "broadcast-retry": "重发失败", "staff-add": "新建账号", "staff-passwd": "重设密码",
                "staff-disable": "停用账号", "staff-enable": "启用账号", "quiz-paper": "录入纸质答卷"}


async def audit_log(desk: Desk) -> Response:
    params = desk.request.query_params
    until = day(params.get("until"))
    subject = clean(params.get("subject"), 64)
    if subject.upper().startswith("FF-"):  # a receipt, as staff may type it
        subject = subject.upper()
    where = audit.AuditFilter(actor=clean(params.get("actor"), 64) or None,
                              action=clean(params.get("action"), 32) or None, subject=subject or None,
                              since=day(params.get("since")), until=until + timedelta(days=1) if until else None)
    number = whole(params.get("page"), 1) or 1
    number = number if number < 100_000 else 1
    total = await audit.total(desk.session, where)
    rows = await audit.entries(desk.session, where, PAGE, (number - 1) * PAGE)
    kept = {k: v for k, v in params.items() if k != "page" and v}
    return desk.page("audit.html", rows=rows, total=total, number=number, pages=max(1, -(-total // PAGE)),
                     params=kept, query=urlencode(kept), actions=await audit.actions(desk.session),
                     names=ACTION_NAMES, local_time=local_time)


async def accounts_page(desk: Desk, problem: str | None = None, notice: str | None = None,
                        status: int = 200) -> Response:
    return desk.page("accounts.html", status, rows=await accounts.listing(desk.session), roles=accounts.ROLES,
                     townships=desk.settings.region.townships, problem=problem,
                     notice=notice or {"added": "账号已建好。", "changed": "已保存。"}.get(
                         desk.request.query_params.get("notice", "")), local_time=local_time)


async def account_change(desk: Desk) -> Response:
    form = desk.request.state.form or {}
    action = form.get("action", "")
    try:
        if action == "add":
            made = await accounts.add(desk.session, desk.settings, str(form.get("name", "")),
                                      str(form.get("role", "")), [str(t) for t in form.getlist("township")],
                                      str(form.get("password", "")))
            audit.record(desk.session, desk.actor, "staff-add", made.name, f"role {made.role}")
            notice = "added"
        elif action in ("disable", "enable"):
            name = str(form.get("name", ""))
            if action == "disable" and " ".join(name.split()) == desk.account.name:
                return await accounts_page(desk, problem="不能停用自己的账号。", status=400)
            account, changed = await accounts.set_disabled(desk.session, name, action == "disable")
            if changed:  # (clicked twice: the second changes nothing, and is not audited)
                audit.record(desk.session, desk.actor, f"staff-{action}", account.name)
            notice = "changed"
        elif action == "passwd":
            changed = await accounts.set_password(desk.session, desk.settings.console, str(form.get("name", "")),
                                                  str(form.get("password", "")))
            audit.record(desk.session, desk.actor, "staff-passwd", changed.name)
            notice = "changed"
        else:
            return await accounts_page(desk, problem="没有这个操作。", status=400)
    except accounts.StaffError as exc:
        return await accounts_page(desk, problem=_plain(exc.message), status=400)
    return RedirectResponse(f"{base(desk.request)}/accounts?notice={notice}", status_code=303, headers=NO_STORE)


def _plain(message: str) -> str:
    if "password" in message:
        return f"密码至少 {accounts.PASSWORD_MIN} 位，而且不能太简单。"
    if "already" in message:
        return "已经有同名的账号了。"
    if "admin account is for the whole county" in message:
        return "管理员账号管全县，不能只选几个乡镇。请去掉乡镇，或选别的角色。"
    if "unknown role" in message:
        return "请选择一个角色。"
    if "township" in message:
        return "请选择列表里的乡镇。"
    if "no account" in message:
        return "没有这个账号。"
    return "姓名需要 1 到 48 个字。"
