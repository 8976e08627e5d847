"""HTTP: health check, the web chat page and its JSON API. Channel adapters for other platforms mount here too."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text as sql
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.engine import Engine
from bot.types import Inbound
from handlers.menu import SLOW_DOWN

if TYPE_CHECKING:
    from bot.channels.wechat_api import WeChatApi

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
MAX_USER_CHARS = 128
# HTML pages load only our own files (the chat page's script and style are served from /static): no inline
# script, no framing, no referrer sent along
PAGE_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; base-uri 'none'; object-src 'none'; form-action 'self'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class BadRequest(Exception):
    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or BadRequest (413) as soon as the declared or the received size passes `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"body larger than {limit} bytes", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadRequest(f"body larger than {limit} bytes", 413)
    return bytes(body)


async def read_json(request: Request, limit: int) -> Any:
    """The request body as JSON, or BadRequest with a reason a developer can act on."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise BadRequest("Content-Type must be application/json", 415)
    body = await read_body(request, limit)
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"body is not valid UTF-8 JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest("body is nested too deeply") from exc
    except ValueError as exc:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise BadRequest("body has a number with too many digits") from exc


def _unicode(value: str) -> bool:
    """Text that can be stored and sent: no lone surrogates (JSON's \\ud800 escapes decode to them)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def chat_inbound(payload: Any, origin: str | None = None) -> Inbound:
    if not isinstance(payload, dict):
        raise BadRequest('body must be a JSON object {"user": "...", "text": "..."}')
    user, text = payload.get("user"), payload.get("text")
    if not isinstance(user, str) or not user.strip():
        raise BadRequest('"user" must be a non-empty string')
    if len(user) > MAX_USER_CHARS:
        raise BadRequest(f'"user" must be at most {MAX_USER_CHARS} characters')
    if not user.isprintable():  # control characters (NUL, which PostgreSQL refuses), lone surrogates …
        raise BadRequest('"user" must be printable text, without control characters')
    if not isinstance(text, str):
        raise BadRequest('"text" must be a string')
    if not _unicode(text):  # control characters in the text are fine: the engine strips them
        raise BadRequest('"text" must be valid Unicode (it has a lone surrogate)')
    return Inbound(channel="web", user=user, chat=user, text=text, origin=origin)


class SecurityHeaders:
    """ASGI middleware: `nosniff` on every response, and on HTML pages the headers in PAGE_HEADERS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"x-content-type-options", b"nosniff")]
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/html"):
                    headers += PAGE_HEADERS
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(engine: Engine, channels: Sequence[Route] = (), wechat_api: WeChatApi | None = None) -> Starlette:
    """The HTTP app; `channels` are the webhook routes of the messaging channels that are on. The quiz page's
    WeChat sign-in and share card use `wechat_api` (the WeChat channel's), or one of their own that the app
    closes when it stops."""
    from bot.channels.wechat_api import WeChatApi
    from bot.web.console import app as console
    from bot.web.quiz_api import QuizApi  # (it reads the request helpers above)
    from bot.web.quiz_page import QuizPage

    settings = engine.services.settings
    owned: WeChatApi | None = None
    if wechat_api is None and (settings.wechat.page_sign_in or settings.wechat.page_share):
        wechat_api = owned = WeChatApi(settings.wechat, engine.services.db)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        if owned is not None:
            await owned.close()

    async def healthz(_: Request) -> Response:
        try:
            async with engine.services.db.session() as session:
                await session.execute(sql("SELECT 1"))
        except Exception:
            log.exception("health check: database unreachable")
            return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def page(request: Request) -> Response:
        return templates.TemplateResponse(request, "chat.html", {"region": settings.region.region})

    async def http_error(request: Request, exc: Exception) -> Response:
        """No route, or not this method: the console's page under /console/, else Starlette's plain text."""
        assert isinstance(exc, HTTPException)
        if console.is_console(request):
            return console.http_error(request, exc)
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=exc.headers)
        return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)

    async def api_chat(request: Request) -> Response:
        limits = engine.services.limits
        origin = limits.client_address(request.client.host if request.client else None,
                                       request.headers.get("x-forwarded-for"))
        if origin is not None and not limits.address_messages.allow(origin):
            log.warning("web chat: a client address is over the message limit; request not read")
            return JSONResponse({"error": "too many messages from this address; try again in a minute",
                                 "replies": [{"text": engine.services.fill(SLOW_DOWN), "options": []}]},
                                status_code=429, headers={"Retry-After": "60"})
        try:
            inbound = chat_inbound(await read_json(request, settings.http.max_body_bytes), origin)
        except BadRequest as exc:
            return JSONResponse({"error": exc.reason}, status_code=exc.status)
        try:
            replies = await engine.handle(inbound)
        except Exception:
            log.exception("web chat: engine failed")
            sorry = f"抱歉，系统出了点问题，请稍后再试。急事请打 {settings.region.hotline}。"
            return JSONResponse({"error": "internal error", "replies": [{"text": sorry, "options": []}]},
                                status_code=500)
        return JSONResponse({"replies": [
            {"text": r.text, "options": [{"label": o.label, "value": o.value} for o in r.options]} for r in replies]})

    app = Starlette(routes=[
        # first: a quiz campaign's answers (its first hour brings thousands of players at once) and the platforms'
        # webhooks carry nearly all requests; each route before the one a request is for costs a pattern match
        *QuizApi(engine.services).routes(),
        *channels,
        Route("/healthz", healthz),
        Route("/", page),
        Route("/api/chat", api_chat, methods=["POST"]),
        *QuizPage(engine.services, wechat_api).routes(),
        *console.console_routes(engine.services),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ], lifespan=lifespan, exception_handlers={HTTPException: http_error})
    app.add_middleware(SecurityHeaders)
    return app
