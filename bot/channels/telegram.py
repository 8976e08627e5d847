"""Telegram channel: python-telegram-bot talks to Telegram; this module only translates.

Updates become `Inbound`s for the engine; its `Reply`s become messages with inline keyboards. Sending goes through
PTB's AIORateLimiter (30 messages/s overall, 20 a minute per group), extended with bounded retries of 429s after
their `retry_after` (a send the outbox paces gets its 429 back, see RetryingLimiter) and of requests that surely did
not reach Telegram (a refused connection, a server error); a request whose answer never came is not repeated.
Each update is handled once (its update_id is recorded with the turn).
Updates of one chat are processed in order, different chats in parallel. Long polling is the default; with
`telegram.webhook_url` our own HTTP server receives the updates and answers Telegram once one is handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.constants import ChatMemberStatus, ChatType, MessageLimit, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    PollAnswerHandler,
    filters,
)

from bot.channels.telegram_errors import PACED, never_sent, retry_seconds
from bot.channels.telegram_groups import TelegramGroupTalk
from bot.config import TelegramSettings
from bot.engine import Engine
from bot.storage import inbox
from bot.types import Inbound, Media, Reply
from bot.web.app import BadRequest as RefusedRequest
from bot.web.app import read_body
from handlers.group_quiz import GroupHost
from handlers.menu import COMMANDS

log = logging.getLogger(__name__)
CHANNEL = "telegram"
GROUPS = (ChatType.GROUP, ChatType.SUPERGROUP)
JOINED = (ChatMemberStatus.MEMBER, ChatMemberStatus.ADMINISTRATOR)
GONE = (ChatMemberStatus.LEFT, ChatMemberStatus.BANNED)


class RetryingLimiter(AIORateLimiter):
    """AIORateLimiter (flood limits) plus bounded retries: of 429s after their `retry_after`, and with backoff of
    network and 5xx errors.

    A request that posts a message is retried only when it surely posted nothing (Telegram answered with an error, or
    no connection was made): after a read timeout or a dropped connection the message may have arrived, and sending
    it again could post it twice. The caller decides then (the outbox tries once more, much later).

    A send made with `rate_limit_args=PACED` gets a 429 raised at once: its caller (the outbox) keeps a send schedule
    shared by every process and holds all of them for `retry_after`. Waiting it out here instead would pause only
    this process, whose booked slots then lapse while the others go on, and release its waiting sends in one burst
    at the end of the pause, which draws the next 429.
    """

    POSTS = ("send", "forward", "copy")  # Bot API methods that post a message

    def __init__(self, retries: int, per_second: float = 30, backoff: float = 0.5) -> None:
        super().__init__(overall_max_rate=per_second, max_retries=0)  # 429s are retried below, or raised
        self.retries, self.backoff = retries, backoff

    async def process_request(self, callback: Callable[..., Coroutine[Any, Any, Any]], args: Any,
                              kwargs: dict[str, Any], endpoint: str, data: dict[str, Any],
                              rate_limit_args: int | None) -> Any:
        for attempt in range(self.retries + 1):
            try:
                return await super().process_request(callback, args, kwargs, endpoint, data, None)
            except BadRequest:
                raise
            except RetryAfter as exc:
                if attempt == self.retries or rate_limit_args == PACED:
                    raise
                log.info("telegram %s: too many requests; waiting %.0f s", endpoint, retry_seconds(exc))
                await asyncio.sleep(retry_seconds(exc) + 0.1)
            except NetworkError as exc:
                harmless = never_sent(exc) or not endpoint.startswith(self.POSTS)  # cannot post a message twice
                if attempt == self.retries or not harmless:
                    raise
                log.warning("telegram %s failed (%s); retry %d of %d", endpoint, exc.__class__.__name__,
                            attempt + 1, self.retries)
                await asyncio.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")


class PerChatOrder(BaseUpdateProcessor):
    """Process updates of different chats concurrently but each chat's updates one after the other."""

    def __init__(self, max_concurrent_updates: int = 64) -> None:
        super().__init__(max_concurrent_updates)
        self.locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = 0
        if isinstance(update, Update):  # a poll answer has no chat: in order with its voter's other updates
            who = update.effective_chat or update.effective_user
            key = who.id if who else 0
        async with self.locks[key]:
            await coroutine

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass


def split_text(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """Cut a long text into messages under the limit, at paragraph (then line, then hard) boundaries."""
    chunks: list[str] = []
    current = ""
    for paragraph in text.split("\n\n"):
        candidate = f"{current}\n\n{paragraph}" if current else paragraph
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            chunks.append(current)
        while len(paragraph) > limit:
            cut = paragraph.rfind("\n", 0, limit)
            cut = cut if cut > 0 else limit
            chunks.append(paragraph[:cut])
            paragraph = paragraph[cut:].lstrip("\n")
        current = paragraph
    if current:
        chunks.append(current)
    return chunks


class TelegramChannel:
    def __init__(self, engine: Engine, settings: TelegramSettings) -> None:
        self.engine, self.settings = engine, settings
        limiter = RetryingLimiter(settings.send_retries, settings.max_messages_per_second)
        builder = Application.builder().token(settings.token).rate_limiter(limiter).concurrent_updates(PerChatOrder())
        builder = (builder.read_timeout(settings.read_timeout).write_timeout(settings.write_timeout)
                   .connect_timeout(settings.connect_timeout))
        if settings.base_url:
            base = settings.base_url.rstrip("/")
            builder = builder.base_url(base).base_file_url(base.rsplit("/", 1)[0] + "/file/bot")
        if settings.webhook_url:
            builder = builder.updater(None)
        self.app = builder.build()
        # quiz rounds in groups: /quiz (also /quiz@ourbot) from a group, and the members' votes in its polls
        self.groups = GroupHost(engine.services, TelegramGroupTalk(self.app.bot))
        self.app.add_handler(CommandHandler("quiz", self.on_group_quiz,
                                            filters.ChatType.GROUPS & filters.UpdateType.MESSAGE))
        self.app.add_handler(PollAnswerHandler(self.on_poll_answer))
        self.app.add_handler(ChatMemberHandler(self.on_membership, ChatMemberHandler.MY_CHAT_MEMBER))
        self.app.add_handler(CallbackQueryHandler(self.on_button))
        # new messages only: an edit of an earlier message is not a new answer to the current question
        new = filters.UpdateType.MESSAGE
        self.app.add_handler(MessageHandler(new & (filters.TEXT | filters.COMMAND), self.on_message))
        self.app.add_handler(MessageHandler(new & (filters.PHOTO | filters.Document.ALL | filters.VOICE
                                                   | filters.VIDEO | filters.LOCATION), self.on_media))
        self.app.add_error_handler(self.on_error)

    # -- lifecycle ------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.app.initialize()
        await self.app.bot.set_my_commands([BotCommand(c, d) for c, d in COMMANDS])
        await self.app.start()
        if self.settings.webhook_url:
            await self.app.bot.set_webhook(self.settings.webhook_url, secret_token=self.settings.webhook_secret,
                                           allowed_updates=Update.ALL_TYPES)
            log.info("telegram: webhook mode")
        else:
            assert self.app.updater is not None
            await self.app.bot.delete_webhook()
            await self.app.updater.start_polling(allowed_updates=Update.ALL_TYPES, poll_interval=0.0, timeout=10)
            log.info("telegram: long polling")

    async def stop(self) -> None:
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()

    async def webhook(self, request: Request) -> Response:
        """POST endpoint for Telegram's webhook; only calls carrying our secret token are processed. Answers once
        the update has been handled."""
        if request.headers.get("x-telegram-bot-api-secret-token") != self.settings.webhook_secret:
            return JSONResponse({"error": "forbidden"}, status_code=403)
        try:
            body = await read_body(request, self.settings.max_body_bytes)
        except RefusedRequest as exc:
            return JSONResponse({"error": exc.reason}, status_code=exc.status)
        try:
            update = Update.de_json(json.loads(body), self.app.bot)
        except Exception:
            return JSONResponse({"error": "not a Telegram update"}, status_code=400)
        # handled before Telegram hears back: a process killed meanwhile gets the update again (and handles it
        # once, bot/storage/inbox.py); updates of one chat still one after the other
        await self.app.update_processor.process_update(update, self.app.process_update(update))
        return Response(status_code=200)

    # -- updates to the engine ----------------------------------------------------------------------------------
    def _sender(self, user_id: int) -> dict[str, str | None]:
        """The staff fields of an Inbound: the configured role and console account, or none for a resident."""
        member = self.settings.member(user_id)
        return {"role": member.role if member else None, "account": member.account or None if member else None}

    async def on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or message.from_user is None or message.text is None:
            return
        is_group = message.chat.type in GROUPS
        text, addressed = self._addressed_text(message, is_group)
        inbound = Inbound(channel=CHANNEL, user=str(message.from_user.id), chat=str(message.chat.id), text=text,
                          is_group=is_group, addressed=addressed, **self._sender(message.from_user.id),
                          staff_chat=message.chat.id == self.settings.staff_chat_id)
        await self._answer_once(update, inbound, message.chat.id)

    async def on_media(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Photos and files (evidence for a tip), voice, video, locations: the engine says what to do with them."""
        message = update.effective_message
        if message is None or message.from_user is None or message.chat.type in GROUPS:
            return  # in groups the bot only answers what is addressed to it, and media never is
        media: tuple[Media, ...] = ()
        if message.photo:
            largest = message.photo[-1]
            media, kind = (Media("image", largest.file_id, size=largest.file_size),), "image"
        elif message.document:
            doc = message.document
            media, kind = (Media("file", doc.file_id, name=doc.file_name, size=doc.file_size),), "file"
        elif message.video:
            media, kind = (Media("file", message.video.file_id, size=message.video.file_size),), "file"
        else:
            kind = "voice" if message.voice else "location"
        inbound = Inbound(channel=CHANNEL, user=str(message.from_user.id), chat=str(message.chat.id),
                          text=message.caption or "", kind=kind, media=media,
                          **self._sender(message.from_user.id))
        await self._answer_once(update, inbound, message.chat.id)

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        chat = query.message.chat if query.message else None
        chat_id = chat.id if chat else query.from_user.id
        inbound = Inbound(channel=CHANNEL, user=str(query.from_user.id), chat=str(chat_id), text=query.data or "",
                          is_group=bool(chat and chat.type in GROUPS), addressed=True,
                          **self._sender(query.from_user.id),
                          staff_chat=chat_id == self.settings.staff_chat_id)
        if await self._answer_once(update, inbound, chat_id):
            with contextlib.suppress(TelegramError):  # the tap's spinner; an old tap may no longer be answerable
                await query.answer()

    async def on_membership(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        change = update.my_chat_member
        if change is None:
            return
        chat, status = change.chat, change.new_chat_member.status
        if chat.type in GROUPS:
            if status in JOINED and change.old_chat_member.status not in JOINED:
                await self.send(chat.id, await self.engine.joined_group(CHANNEL, str(chat.id), chat.title or "",
                                                                        self._key(update)))
            elif status in GONE:
                await self.engine.left_group(CHANNEL, str(chat.id), chat.title or "")
        elif chat.type == ChatType.PRIVATE and status in GONE:
            await self.engine.unreachable(CHANNEL, str(chat.id))

    async def on_group_quiz(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or message.from_user is None:
            return
        # an anonymous administrator writes as the group itself
        anonymous_admin = message.sender_chat is not None and message.sender_chat.id == message.chat.id
        await self.groups.command(str(message.chat.id), str(message.from_user.id), " ".join(context.args or []),
                                  self._key(update), admin=True if anonymous_admin else None)

    async def on_poll_answer(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        answer = update.poll_answer
        if answer is None or answer.user is None:  # a vote on behalf of a chat: nobody to rank
            return
        await self.groups.answer(answer.poll_id, str(answer.user.id), answer.user.full_name, list(answer.option_ids))

    def _key(self, update: Update) -> str:
        """The update's exactly-once key: Telegram numbers updates per bot."""
        return f"{CHANNEL}:{self.settings.token.partition(':')[0]}:{update.update_id}"

    async def _answer_once(self, update: Update, inbound: Inbound, chat_id: int) -> bool:
        """Hand the message to the engine and send the answer, unless this update was handled before (Telegram
        delivers a webhook update again when it got no answer in time, polling after a restart). False then."""
        replies = await self.engine.handle_once(inbound, inbox.Once(self._key(update)))
        if replies is None:
            log.info("telegram: update %d was handled before; not answered again", update.update_id)
            return False
        await self.send(chat_id, replies, user=int(inbound.user))
        return True

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram: update failed: %s", context.error.__class__.__name__, exc_info=context.error)

    def _addressed_text(self, message: Message, is_group: bool) -> tuple[str, bool]:
        """The text without the bot's @name, and whether a group message is meant for the bot."""
        text = message.text or ""
        username = f"@{self.app.bot.username}" if self.app.bot.username else None
        mentioned = bool(username and username.lower() in text.lower())
        if username:
            text = text.replace(username, " ").replace(username.lower(), " ")
        text = " ".join(text.split()) if mentioned else text.strip()
        command = text.startswith("/")
        replying = bool(message.reply_to_message and message.reply_to_message.from_user
                        and message.reply_to_message.from_user.id == self.app.bot.id)
        return text, (not is_group) or command or mentioned or replying

    # -- replies to Telegram ------------------------------------------------------------------------------------
    async def send(self, chat_id: int, replies: list[Reply], user: int | None = None) -> None:
        for reply in replies:
            chunks = split_text(html.escape(reply.text, quote=False))
            for n, chunk in enumerate(chunks):
                markup = None
                if reply.options and n == len(chunks) - 1:
                    markup = InlineKeyboardMarkup([[InlineKeyboardButton(o.label, callback_data=o.value)]
                                                   for o in reply.options])
                if not await self._send_one(chat_id, chunk, markup, user):
                    return

    async def _send_one(self, chat_id: int, text: str, markup: InlineKeyboardMarkup | None, user: int | None) -> bool:
        try:
            await self.app.bot.send_message(chat_id, text, parse_mode=ParseMode.HTML, reply_markup=markup)
            return True
        except Forbidden:
            log.warning("telegram: a chat refuses our messages; marked unreachable")
            if user is not None and chat_id == user:
                await self.engine.unreachable(CHANNEL, str(user))
        except TelegramError as exc:
            log.error("telegram: a message was not delivered: %s", exc.__class__.__name__)
        return False
