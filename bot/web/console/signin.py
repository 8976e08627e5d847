"""Signing in and out of the console: a form of `username` and `password`, limited per client address, counted
per account (lock-out), audited."""

from __future__ import annotations

import hmac
import logging
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bot.limits import SlidingWindow
from bot.services import Services
from bot.staff import accounts, audit, sessions
from bot.web.console import auth
from bot.web.console.auth import NO_STORE, Desk, base, render

log = logging.getLogger(__name__)
FIELD_MAX = 200


class SignIn:
    def __init__(self, services: Services) -> None:
        self.services = services
        rules = services.settings.console
        self.per_address = SlidingWindow(rules.logins_per_minute, 60)

    def _form(self, request: Request, status: int = 200, problem: str | None = None, name: str = "") -> Response:
        token, new = auth.login_token(request)
        response = render(request, "login.html", status, csrf=token, problem=problem, name=name,
                          next=request.query_params.get("next", ""))
        if new:
            auth.set_login_cookie(response, request, token)
        return response

    async def page(self, request: Request) -> Response:
        token = auth.cookie_token(self.services, request)
        if token is not None:
            try:
                async with self.services.db.transaction() as session:
                    if await sessions.current(session, token, self.services.settings.console.idle_minutes):
                        return RedirectResponse(base(request) + "/", status_code=303, headers=NO_STORE)
            except Exception:  # the database is unreachable: the form, to try again
                log.exception("console: the sign-in page could not check a session")
        return self._form(request)

    def _next(self, request: Request, wanted: str) -> str:
        """Where to go after signing in: a console page only (never another site)."""
        target = unquote(wanted)
        home = base(request)
        if target.startswith(home + "/") and "//" not in target and "\\" not in target:
            return target
        return home + "/"

    async def submit(self, request: Request) -> Response:
        try:
            form = await auth.read_form(request, 8192)
        except Exception:
            return self._form(request, 400, "请用页面上的表单登录。")
        name = auth.clean(form.get("username"), accounts.NAME_MAX)
        password = str(form.get("password", ""))[:FIELD_MAX]
        cookie = request.cookies.get(auth.LOGIN_COOKIE, "")
        if not cookie or not hmac.compare_digest(str(form.get("csrf", "")).encode(), cookie.encode()):
            return self._form(request, 403, "页面已过期，请重新输入用户名和密码。", name)
        limits = self.services.limits
        address = limits.client_address(request.client.host if request.client else None,
                                        request.headers.get("x-forwarded-for")) or "unknown"
        if not self.per_address.allow(address):
            log.warning("console: a client address is over the sign-in limit")
            return self._form(request, 429, "尝试次数太多。请一分钟后再试。", name)
        try:
            return await self._check(request, form, name, password)
        except Exception:  # the database is unreachable, or refused the commit: no one is signed in
            log.exception("console: sign-in failed")
            return self._form(request, 503, auth.SORRY, name)

    async def _check(self, request: Request, form: Any, name: str, password: str) -> Response:
        rules = self.services.settings.console
        async with self.services.db.transaction() as session:
            result = await accounts.sign_in(session, rules, name, password)
            if result.account is None:
                audit.record(session, "console", "login-failed", " ".join(name.split())[:64] or "-", result.refusal)
                problems = {"locked": f"连续输错次数太多，账号已锁定 {rules.lockout_minutes:g} 分钟。"
                                      "请稍后再试，或请管理员重设密码。",
                            "disabled": "这个账号已停用。如有疑问，请联系管理员。"}
                status = 423 if result.refusal == "locked" else 401
                return self._form(request, status, problems.get(result.refusal or "", "用户名或密码不对，请再试一次。"),
                                  name)
            token, _ = await sessions.open_session(session, result.account)
            await sessions.forget_idle(session, rules.idle_minutes)
            audit.record(session, f"console:{result.account.name}", "login", result.account.name)
        response = RedirectResponse(self._next(request, str(form.get("next", ""))), status_code=303,
                                    headers=NO_STORE)
        auth.set_session_cookie(response, request, self.services, token)
        auth.clear_login_cookie(response, request)
        return response


async def sign_out(desk: Desk) -> Response:
    token = auth.cookie_token(desk.services, desk.request)
    if token is not None:
        await sessions.close_session(desk.session, token)
    audit.record(desk.session, desk.actor, "logout", desk.account.name)
    response = RedirectResponse(base(desk.request) + "/login", status_code=303, headers=NO_STORE)
    auth.clear_session_cookie(response, desk.request)
    return response
