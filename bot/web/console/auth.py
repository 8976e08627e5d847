"""Who is signed in to the console, and the checks every console request passes.

A session cookie (`ff_staff`: a random token and our signature, HttpOnly, SameSite=Strict, Secure over HTTPS,
scoped to the console's path) names a row in staff_sessions. Every request that changes something carries that
session's CSRF token (a form field `csrf`, or the `X-CSRF-Token` header htmx sends); the sign-in form, before any
session, carries a token that must match a cookie of its own. Console pages are never cached.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bot.config import Settings
from bot.services import Services
from bot.staff import accounts, sessions
from bot.storage.models import StaffAccount
from bot.tips.ledger import CHINA, YEARS
from bot.web.app import BadRequest, read_body, templates

log = logging.getLogger(__name__)
COOKIE = "ff_staff"
LOGIN_COOKIE = "ff_staff_login"
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
SAFE_METHODS = ("GET", "HEAD")
ID_MAX = 2**31 - 1
SORRY = "抱歉，系统出了点问题，这次操作没有保存。请稍后再试。"


@dataclass
class Desk:
    """What a console page works with: the request, the open transaction, the account and the services."""

    request: Request
    session: AsyncSession
    account: StaffAccount
    csrf: str
    services: Services

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def actor(self) -> str:
        """Who did it, in tips' histories and the audit log: console staff are `console:NAME`."""
        return f"console:{self.account.name}"

    @property
    def townships(self) -> list[str] | None:
        """The codes of the townships the account is limited to, or None for the whole county."""
        return self.account.townships or None

    def own_townships(self) -> list[Any]:
        """The townships of config.yaml this account works for."""
        return [t for t in self.settings.region.townships if self.townships is None or t.code in self.townships]

    @property
    def scope(self) -> tuple[str, ...] | None:
        names = accounts.township_names(self.settings, self.account)
        return tuple(names) if names is not None else None

    def may(self, permission: str) -> bool:
        return accounts.holds(self.account, permission)

    async def undo(self) -> None:
        """Roll back what this request changed (the account stays loaded, to render the answer)."""
        await self.session.rollback()
        await self.session.refresh(self.account)

    def page(self, template: str, status: int = 200, **context: Any) -> Response:
        return render(self.request, template, status, desk=self, **context)


Page = Callable[[Desk], Awaitable[Response]]


def root(request: Request) -> str:
    """The app's own path prefix (uvicorn's --root-path behind a proxy; Starlette keeps it as app_root_path)."""
    scope = request.scope
    return str(scope.get("app_root_path", scope.get("root_path", ""))).rstrip("/")


def base(request: Request) -> str:
    """The console's path as the browser sees it (behind a proxy that serves us under a prefix, with it)."""
    return root(request) + "/console"


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    response = templates.TemplateResponse(request, f"console/{template}",
                                          {"base": base(request), "static": root(request) + "/static", **context},
                                          status_code=status)
    response.headers.update(NO_STORE)
    return response


def refusal(request: Request, status: int, message: str, desk: Desk | None = None) -> Response:
    return render(request, "refused.html", status, message=message, desk=desk)


def _signature(services: Services, token: str) -> str:
    return services.vault.fingerprint("console-session", token)[:32]


def cookie_token(services: Services, request: Request) -> str | None:
    token, _, signature = request.cookies.get(COOKIE, "").partition(".")
    if token and signature and hmac.compare_digest(signature, _signature(services, token)):
        return token
    return None


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def set_session_cookie(response: Response, request: Request, services: Services, token: str) -> None:
    response.set_cookie(COOKIE, f"{token}.{_signature(services, token)}", httponly=True, samesite="strict",
                        secure=_secure(request), path=base(request))


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path=base(request), httponly=True, samesite="strict", secure=_secure(request))


def login_token(request: Request) -> tuple[str, bool]:
    """The sign-in form's CSRF token: the browser's own, or a new one (True: set it as a cookie)."""
    token = request.cookies.get(LOGIN_COOKIE, "")
    return (token, False) if len(token) == 43 else (secrets.token_urlsafe(32), True)


def set_login_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request),
                        path=base(request), max_age=3600)


def clear_login_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(LOGIN_COOKIE, path=base(request), httponly=True, samesite="strict", secure=_secure(request))


def _sent_csrf(request: Request, form: Any) -> str:
    return str(request.headers.get("x-csrf-token") or (form.get("csrf") if form is not None else None) or "")


async def read_form(request: Request, limit: int) -> Any:
    """The request's form, its body read with a size limit first (BadRequest 413 past `limit`)."""
    request._body = await read_body(request, limit)  # Starlette's form parser reads this cached body
    return await request.form(max_files=0, max_fields=200)


def _to_login(request: Request) -> Response:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    location = f"{base(request)}/login?next={quote(target, safe='')}"
    if request.headers.get("hx-request"):  # htmx: a full-page visit, not a login form inside a table cell
        return Response(status_code=401, headers={"HX-Redirect": location, **NO_STORE})
    return RedirectResponse(location, status_code=303, headers=NO_STORE)


Endpoint = Callable[[Request], Awaitable[Response]]


def _route(request: Request) -> str:
    """The route's pattern, for a log line (not the path: it holds whatever the client put in it)."""
    return str(getattr(request.scope.get("route"), "path", "page"))


def guarded(services: Services, handler: Page, permission: str | None = None) -> Endpoint:
    """A console endpoint: signed in (or off to the sign-in page), the CSRF token checked on anything but GET,
    the permission held; the handler runs in one transaction with the session's use."""

    async def endpoint(request: Request) -> Response:
        token = cookie_token(services, request)
        if token is None:
            return _to_login(request)
        form = None
        if request.method not in SAFE_METHODS:
            try:
                form = await read_form(request, services.settings.http.max_body_bytes)
            except BadRequest as exc:
                return refusal(request, exc.status, "提交的内容太多了。请精简后再试。")
            except Exception:  # a body that is not a form: no token in it
                form = None
        try:
            async with services.db.transaction() as session:
                signed = await sessions.current(session, token, services.settings.console.idle_minutes)
                if signed is None:
                    response = _to_login(request)
                    clear_session_cookie(response, request)
                    return response
                desk = Desk(request, session, signed.account, signed.csrf, services)
                sent = _sent_csrf(request, form).encode()
                if request.method not in SAFE_METHODS and not hmac.compare_digest(sent, signed.csrf.encode()):
                    return refusal(request, 403, "这个请求缺少有效的安全令牌（CSRF）。请刷新页面再试。", desk)
                if permission is not None and not desk.may(permission):
                    return refusal(request, 403, "您的账号没有这项权限。如需开通，请联系管理员。", desk)
                request.state.form = form
                try:
                    return await handler(desk)
                except Exception:
                    log.exception("console: %s %s failed", request.method, _route(request))
                    await desk.undo()
                    return refusal(request, 500, SORRY, desk)
        except Exception:  # the database is unreachable, or refused the commit: nothing was kept
            log.exception("console: %s %s: the database failed", request.method, _route(request))
            return refusal(request, 503, SORRY)

    return endpoint


def day(text: str | None) -> datetime | None:
    """A date filter (YYYY-MM-DD, as a date input sends it) as the start of that day in China time; None when
    absent or not a date (of ledger.YEARS)."""
    try:
        moment = datetime.strptime(text or "", "%Y-%m-%d").replace(tzinfo=CHINA)
    except ValueError:
        return None
    return moment if moment.year in YEARS else None


def whole(text: object, default: int | None = None) -> int | None:
    """A whole number from a form or query: ASCII digits only (not "²" or "١٢", which str.isdigit lets through), at
    most 18 of them (int() refuses a string of more than 4300); `default` when absent or not one."""
    raw = str(text or "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else default


def row_id(value: object) -> int | None:
    """A row's id from a path, form or query (int columns: 1 to 2**31 - 1; PostgreSQL refuses a larger value
    outright), or None: no such row."""
    number = value if isinstance(value, int) else whole(value)
    return number if number is not None and 0 < number <= ID_MAX else None


def clean(text: object, limit: int) -> str:
    """A text field from a form or query as we keep it: printable characters only (PostgreSQL refuses NUL), blanks
    collapsed, cut to `limit`."""
    return " ".join("".join(ch for ch in str(text or "") if ch.isprintable()).split())[:limit]


def spreadsheet(book: Any, filename: str) -> Response:
    """An openpyxl workbook as a download (never cached)."""
    import io

    buffer = io.BytesIO()
    book.save(buffer)
    return Response(buffer.getvalue(), headers={
        "content-type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "content-disposition": f'attachment; filename="{filename}"', **NO_STORE})


