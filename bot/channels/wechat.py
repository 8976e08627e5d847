"""WeChat Official Account channel: signed (and in safe mode AES-encrypted) XML in, passive XML replies out.

wechatpy parses, signs, encrypts and renders; this module translates messages and events into `Inbound`s and the
engine's replies into one text with numbered options. Each message is handled once (MsgId, or for events a keyed
fingerprint of sender + time, recorded in the database so every worker agrees); a retry gets the stored answer or an
empty one. A message whose fields are not what WeChat sends is refused with 400 before anything reads them. When
the engine is not ready within the reply budget, WeChat gets an empty reply and the answer follows as a
customer-service message.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any
from xml.etree import ElementTree

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from wechatpy import create_reply, parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.utils import check_signature

from bot.channels.wechat_api import WeChatApi, WeChatApiError
from bot.config import WeChatSettings
from bot.engine import Engine
from bot.storage import inbox
from bot.types import Inbound, Media, Reply
from bot.web.app import BadRequest, read_body

log = logging.getLogger(__name__)
CHANNEL = "wechat"
MAX_AGE = 300  # seconds: older signed requests are replays
PASSIVE_BYTES = 2000  # WeChat's text reply limit is about 2,048 bytes
COMMIT_GRACE = 1.0  # seconds to wait past the budget for an answer that is being stored as the passive reply
EMPTY = "success"  # WeChat's "no reply, do not retry"
MEDIA = {"image", "video", "shortvideo", "link", "location", "file"}


def _declares(xml: str) -> bool:
    """A DOCTYPE or ENTITY declaration: WeChat never sends one; XXE and entity bombs need one."""
    upper = xml.upper()
    return "<!DOCTYPE" in upper or "<!ENTITY" in upper


# the fields we read, each a plain text element when present (no child elements, attributes or repeats)
FIELDS = ("ToUserName", "FromUserName", "CreateTime", "MsgType", "MsgId", "Event", "EventKey", "Content",
          "Recognition", "MediaId", "PicUrl")
REQUIRED = ("ToUserName", "FromUserName", "CreateTime", "MsgType")
MAX_OPENID = 128  # the width of every user id column
ACCOUNT_ID = re.compile(r"[A-Za-z0-9_\-@.]+")
MAX_MSGID = 20  # a 64-bit number
MAX_EVENT_KEY = 1024  # a VIEW button's URL, the longest key WeChat sends
MAX_SCENE = 64  # a QR code's scene string (stored as the follower's source)


def _refusal(fields: dict[str, Any]) -> str | None:
    """Why a parsed message cannot be handled, or None; the reason names fields, never what they hold."""
    for name in FIELDS:
        if fields.get(name) is not None and not isinstance(fields[name], str):
            return f"{name} must be one plain text element"
    for name in REQUIRED:
        if not fields.get(name):
            return f"{name} is missing"
    if len(fields["FromUserName"]) > MAX_OPENID or len(fields["ToUserName"]) > MAX_OPENID:
        return f"FromUserName and ToUserName must be at most {MAX_OPENID} characters"
    if not (ACCOUNT_ID.fullmatch(fields["FromUserName"]) and ACCOUNT_ID.fullmatch(fields["ToUserName"])):
        # openids and gh_ ids are letters, digits, - and _; anything else would break the reply's XML
        return "FromUserName and ToUserName must be account ids (letters, digits, - and _)"
    if not _digits(fields["CreateTime"], 10):
        return "CreateTime must be a number of seconds"
    if fields.get("MsgId") is not None and not _digits(fields["MsgId"], MAX_MSGID):
        return f"MsgId must be a number of at most {MAX_MSGID} digits"
    key = fields.get("EventKey") or ""
    if len(key) > MAX_EVENT_KEY:
        return f"EventKey must be at most {MAX_EVENT_KEY} characters"
    if (fields.get("Event") or "").lower() == "subscribe_scan" and len(key) > MAX_SCENE:
        return f"a QR scene must be at most {MAX_SCENE} characters"
    return None


def _digits(value: str, most: int) -> bool:
    return 0 < len(value) <= most and value.isascii() and value.isdigit()


def render(replies: list[Reply]) -> list[str]:
    """The replies as WeChat texts: options become numbered lines; cut into messages WeChat accepts."""
    parts: list[str] = []
    for reply in replies:
        lines = [reply.text, *(f"回复 {i}：{o.label}" for i, o in enumerate(reply.options, 1))]
        parts.append("\n".join(lines))
    messages: list[str] = []
    for part in parts:
        if messages and len((messages[-1] + "\n\n" + part).encode()) <= PASSIVE_BYTES:
            messages[-1] += "\n\n" + part
        else:
            while len(part.encode()) > PASSIVE_BYTES:
                cut = len(part.encode()[:PASSIVE_BYTES].decode(errors="ignore"))
                messages.append(part[:cut])
                part = part[cut:]
            messages.append(part)
    return messages


def _refused(reason: str) -> Response:
    log.warning("wechat: refused a request: %s", reason)
    return PlainTextResponse(reason, status_code=400)


class WeChatChannel:
    def __init__(self, engine: Engine, settings: WeChatSettings, api: WeChatApi | None = None) -> None:
        self.engine, self.settings = engine, settings
        self.api = api or WeChatApi(settings, engine.services.db)
        self.crypto = (WeChatCrypto(settings.token, settings.encoding_aes_key, settings.app_id)
                       if settings.safe_mode else None)
        self.background: set[asyncio.Task[None]] = set()

    def routes(self) -> list[Route]:
        return [Route(self.settings.path, self.verify, methods=["GET"]),
                Route(self.settings.path, self.receive, methods=["POST"])]

    async def close(self) -> None:
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)
        await self.api.close()

    # -- HTTP ---------------------------------------------------------------------------------------------------
    def _signed(self, request: Request) -> bool:
        q = request.query_params
        timestamp = q.get("timestamp", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_AGE:
            return False
        try:
            check_signature(self.settings.token, q.get("signature", ""), timestamp, q.get("nonce", ""))
        except InvalidSignatureException:
            return False
        return True

    async def verify(self, request: Request) -> Response:
        """WeChat's server URL check: echo `echostr` when the signature is ours."""
        if not self._signed(request):
            return PlainTextResponse("forbidden", status_code=403)
        return PlainTextResponse(request.query_params.get("echostr", ""))

    async def receive(self, request: Request) -> Response:
        if not self._signed(request):
            return PlainTextResponse("forbidden", status_code=403)
        try:
            body = await read_body(request, self.settings.max_body_bytes)
        except BadRequest as exc:
            return PlainTextResponse(exc.reason, status_code=exc.status)
        q = request.query_params
        try:
            xml = body.decode("utf-8")
            if self.crypto is not None:
                if _declares(xml):
                    return _refused("declarations are not accepted")
                # the envelope holds one field: read it with the C parser (wechatpy's own parse of it costs more)
                envelope = {"Encrypt": ElementTree.fromstring(xml).findtext("Encrypt") or ""}
                xml = self.crypto.decrypt_message(envelope, q.get("msg_signature", ""), q["timestamp"], q["nonce"])
            if _declares(xml):
                return _refused("declarations are not accepted")
            message = parse_message(xml)
        except (InvalidSignatureException, InvalidAppIdException):
            return PlainTextResponse("forbidden", status_code=403)
        except Exception as exc:
            return _refused(f"malformed message ({type(exc).__name__})")
        if message is None:
            return _refused("malformed message (empty)")
        # wechatpy converts a field when it is read: check the raw fields before anything reads one
        reason = _refusal(message._data)
        if reason is not None:
            return _refused(f"malformed message: {reason}")
        reply = await self._answer_once(message)
        if reply is None:
            return PlainTextResponse(EMPTY)
        xml_reply = create_reply(reply, message).render()
        if self.crypto is not None:
            xml_reply = self.crypto.encrypt_message(xml_reply, q["nonce"], q["timestamp"])
        return Response(xml_reply, media_type="application/xml")

    # -- exactly once -------------------------------------------------------------------------------------------
    async def _answer_once(self, message: Any) -> str | None:
        # events have no MsgId: sender + time (+ which), as a keyed fingerprint, so the inbox holds no openid
        key = (str(message.id) if getattr(message, "id", None)
               else self.engine.services.vault.fingerprint("wechat-event", message.source, message._data["CreateTime"],
                                                           getattr(message, "event", ""),
                                                           getattr(message, "key", "") or ""))
        ticket = _Ticket(key)
        task = asyncio.create_task(self._handle(message, ticket))
        done, _ = await asyncio.wait({task}, timeout=self.settings.reply_budget_seconds)
        if not done and ticket.settled:  # the answer is being stored with the passive reply: a moment away
            done, _ = await asyncio.wait({task}, timeout=COMMIT_GRACE)
            if not done and ticket.settled:  # stored but not yet here: WeChat's retry will find it
                return None
        if not done:  # too slow for the passive reply: answer by customer-service message instead
            ticket.deferred = True
            self._later(self._deliver_later(ticket, message.source, task))
            return None
        try:
            answered = task.result()
        except Exception:
            log.exception("wechat: engine failed")
            return self.engine.sorry().text
        if not answered:  # a retry of a message answered before: the stored answer, never a second one
            return await self._stored_reply(key) if ticket.duplicate else None
        if len(ticket.messages) > 1:
            self._later(self._send_rest(key, message.source, ticket.messages[1:]))
        return ticket.messages[0] if ticket.messages else None

    async def _stored_reply(self, key: str) -> str | None:
        async with self.engine.services.db.engine.connect() as conn:
            return await inbox.stored_reply(conn, key)

    async def _mark(self, key: str, status: str) -> None:
        db = self.engine.services.db
        async with db.serialized(), db.engine.begin() as conn:
            await inbox.mark(conn, key, status)

    def _later(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _deliver_later(self, ticket: _Ticket, openid: str, task: asyncio.Task[bool]) -> None:
        try:
            answered = await task
        except Exception:
            log.exception("wechat: engine failed on a deferred message")
            return
        if answered:
            await self._send_rest(ticket.key, openid, ticket.messages)

    async def _send_rest(self, key: str, openid: str, messages: list[str]) -> None:
        for text in messages:
            try:
                result = await self.api.send_text(openid, text)
            except WeChatApiError as exc:
                log.error("wechat: customer-service message not delivered: %s", exc)
                await self._mark(key, "cs-error")
                return
            if not result.ok:
                await self._mark(key, f"cs-{result.errcode}")
                return
        await self._mark(key, "sent")

    # -- messages and events to the engine ----------------------------------------------------------------------
    async def _handle(self, message: Any, ticket: _Ticket) -> bool:
        """The engine's answer, rendered into `ticket.messages`; False when this message was answered before."""
        user = message.source
        kind, text = message.type, getattr(message, "content", "") or ""
        media: tuple[Media, ...] = ()
        if kind == "voice":
            text = (getattr(message, "recognition", None) or "").strip()
            kind = "text" if text else "voice"
        elif kind in MEDIA:
            media_id = getattr(message, "media_id", None)
            if kind == "image" and media_id:
                media = (Media("image", media_id, url=getattr(message, "image", None)),)
            elif kind in ("video", "shortvideo", "file") and media_id:
                media = (Media("file", media_id),)
            kind = "image" if kind == "image" else "file" if kind in ("video", "shortvideo", "file") else kind
        elif kind == "event":
            return await self._event(message, ticket)
        elif kind != "text":
            kind = "unknown"
        inbound = Inbound(channel=CHANNEL, user=user, chat=user, text=text, kind=kind, numbered=True, media=media)
        return await self._once(inbound, ticket)

    async def _event(self, event: Any, ticket: _Ticket) -> bool:
        user, name = event.source, event.event
        if name in ("subscribe", "subscribe_scan"):
            scene = getattr(event, "scene_id", None)
            await self.engine.followed(CHANNEL, user, str(scene) if scene else None)
            text = "/start"
        elif name == "unsubscribe":  # nothing to say, and doing it twice is harmless
            await self.engine.unfollowed(CHANNEL, user)
            return False
        elif name == "click":
            text = f"/{event.key}"
        else:  # view, location reports, template callbacks …: nothing to say
            return False
        inbound = Inbound(channel=CHANNEL, user=user, chat=user, text=text, numbered=True)
        return await self._once(inbound, ticket)

    async def _once(self, inbound: Inbound, ticket: _Ticket) -> bool:
        if await self.engine.handle_once(inbound, ticket) is None:
            ticket.settled, ticket.duplicate = False, True
            return False
        return True


class _Ticket:
    """One WeChat message between the request that waits for its answer and the engine turn that produces it.

    The engine asks for the message's `claim` last, and writes it with the conversation: the answer is stored with
    it (or, when the request already gave up waiting, none is: it goes out as a customer-service message)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.messages: list[str] = []
        self.deferred = False  # the request stopped waiting: the answer goes out as customer-service message(s)
        self.settled = False  # the answer is being stored with the passive reply
        self.duplicate = False

    def claim(self, replies: list[Reply]) -> inbox.Claim:
        self.messages = render(replies)
        passive = not self.deferred  # decided here, with no wait in between, so the request agrees
        self.settled = passive
        first = self.messages[0] if self.messages and passive else None
        return inbox.Claim(self.key, first, "answered" if passive else "deferred")

    def unclaim(self) -> None:
        self.settled = False  # the turn is being answered again: the request must not count on this claim
