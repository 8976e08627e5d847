"""HTTP: health check, the web chat page and its JSON API. Channel adapters for other platforms mount here too."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import text as sql
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from bot.engine import Engine
from bot.types import Inbound

log = logging.getLogger(__name__)
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
MAX_USER_CHARS = 128


class BadRequest(Exception):
    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


async def read_json(request: Request, limit: int) -> Any:
    """The request body as JSON, or BadRequest with a reason a developer can act on."""
    if "application/json" not in request.headers.get("content-type", ""):
        raise BadRequest("Content-Type must be application/json", 415)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"body larger than {limit} bytes", 413)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadRequest(f"body larger than {limit} bytes", 413)
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"body is not valid UTF-8 JSON: {exc}") from exc


def chat_inbound(payload: Any) -> Inbound:
    if not isinstance(payload, dict):
        raise BadRequest('body must be a JSON object {"user": "...", "text": "..."}')
    user, text = payload.get("user"), payload.get("text")
    if not isinstance(user, str) or not user.strip():
        raise BadRequest('"user" must be a non-empty string')
    if len(user) > MAX_USER_CHARS:
        raise BadRequest(f'"user" must be at most {MAX_USER_CHARS} characters')
    if not isinstance(text, str):
        raise BadRequest('"text" must be a string')
    return Inbound(channel="web", user=user, chat=user, text=text)


def create_app(engine: Engine, channels: Sequence[Route] = ()) -> Starlette:
    """The HTTP app; `channels` are the webhook routes of the messaging channels that are on."""
    settings = engine.services.settings

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

    async def api_chat(request: Request) -> Response:
        try:
            inbound = chat_inbound(await read_json(request, settings.http.max_body_bytes))
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

    return Starlette(routes=[
        *channels,  # first: the platforms' webhooks carry nearly all requests
        Route("/healthz", healthz),
        Route("/", page),
        Route("/api/chat", api_chat, methods=["POST"]),
    ])
