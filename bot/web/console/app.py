"""The staff console at /console/: its routes, each behind the sign-in, CSRF and permission checks of auth.py."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from bot.services import Services
from bot.web.console import admin, content, quizzes, signin, tips, today, warnings
from bot.web.console.auth import NO_STORE, Desk, base, guarded, refusal, root

HTTP_ERRORS = {404: "没有这个页面。请从菜单进入，或回到今日。", 405: "不能这样打开这个页面。请用页面上的链接和按钮。"}


def is_console(request: Request) -> bool:
    path = request.url.path.removeprefix(root(request))
    return path == "/console" or path.startswith("/console/")


def http_error(request: Request, exc: HTTPException) -> Response:
    """The console's own page for a path it has no route for, or a method a route does not take."""
    response = refusal(request, exc.status_code, HTTP_ERRORS.get(exc.status_code, "这个请求不能处理。请回到今日再试。"))
    response.headers.update(exc.headers or {})
    return response


def console_routes(services: Services) -> list[BaseRoute]:
    def page(handler: object, permission: str | None = None, methods: tuple[str, ...] = ("GET",)) -> dict:
        return {"endpoint": guarded(services, handler, permission), "methods": list(methods)}  # type: ignore[arg-type]

    sign_in = signin.SignIn(services)

    async def bare(request: object) -> Response:
        return RedirectResponse(base(request) + "/", status_code=307, headers=NO_STORE)  # type: ignore[arg-type]

    async def home(desk: Desk) -> Response:
        return await today.page(desk)

    return [
        Route("/console", bare),
        Mount("/console", routes=[
            Route("/", **page(home)),
            Route("/login", sign_in.page, methods=["GET"]),
            Route("/login", sign_in.submit, methods=["POST"]),
            Route("/logout", **page(signin.sign_out, methods=("POST",))),
            Route("/tips", **page(tips.listing)),
            Route("/tips/export.xlsx", **page(tips.export_xlsx)),
            Route("/tips/{receipt}", **page(tips.show_with_notice)),
            Route("/tips/{receipt}", **page(tips.update, methods=("POST",))),
            Route("/tips/{receipt}/reveal", **page(tips.reveal, "reveal", methods=("POST",))),
            Route("/tips/{receipt}/evidence/{number:int}", **page(tips.evidence_file)),
            Route("/warnings", **page(warnings.listing)),
            Route("/warnings", **page(warnings.create, methods=("POST",))),
            Route("/warnings/preview", **page(warnings.preview, methods=("POST",))),
            Route("/warnings/{id:int}", **page(warnings.show)),
            Route("/warnings/{id:int}", **page(warnings.act, methods=("POST",))),
            Route("/warnings/{id:int}/progress", **page(warnings.progress)),
            Route("/warnings/{id:int}/report.xlsx", **page(warnings.report)),
            Route("/quizzes", **page(quizzes.listing)),
            Route("/quizzes", **page(quizzes.create, methods=("POST",))),
            Route("/quizzes/{slug}", **page(quizzes.show)),
            Route("/quizzes/{slug}", **page(quizzes.act, methods=("POST",))),
            Route("/quizzes/{slug}/export.xlsx", **page(quizzes.export_xlsx)),
            Route("/content", **page(content.page)),
            Route("/content", **page(content.mark, methods=("POST",))),
            Route("/audit", **page(admin.audit_log, "read-audit")),
            Route("/accounts", **page(admin.accounts_page, "manage-accounts")),
            Route("/accounts", **page(admin.account_change, "manage-accounts", methods=("POST",))),
        ]),
    ]
