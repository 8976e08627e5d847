"""Telegram's side of group quiz rounds (handlers/group_quiz.py decides): native quiz polls, plain messages to the
group and who is an administrator there. Errors become `SendFailed` with what they mean (bot/channels/
telegram_errors.py): a post whose answer never came may have arrived.

Sending goes through the channel's Bot, so PTB's AIORateLimiter keeps to 20 messages a minute per group and waits
out a 429's `retry_after` before trying again (a 429 posted nothing)."""

from __future__ import annotations

from telegram import Bot, Poll
from telegram.constants import ChatMemberStatus
from telegram.error import TelegramError

from bot.channels.telegram_errors import delivery_outcome
from handlers.group_quiz import Posted, SendFailed

ADMINS = (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)


class TelegramGroupTalk:
    channel = "telegram"

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def is_admin(self, chat: str, user: str) -> bool:
        try:
            member = await self.bot.get_chat_member(int(chat), int(user))
        except TelegramError as exc:
            raise SendFailed(delivery_outcome(exc)) from exc
        return member.status in ADMINS

    async def post_poll(self, chat: str, question: str, options: list[str], correct: int, explanation: str,
                        open_seconds: int) -> Posted:
        try:
            message = await self.bot.send_poll(int(chat), question, options, is_anonymous=False, type=Poll.QUIZ,
                                               correct_option_ids=[correct], explanation=explanation or None,
                                               open_period=open_seconds)
        except TelegramError as exc:
            raise SendFailed(delivery_outcome(exc, repeatable=False)) from exc
        if message.poll is None:
            raise SendFailed(delivery_outcome(TelegramError("no poll in the answer")))
        return Posted(message.poll.id, message.message_id)

    async def post_text(self, chat: str, text: str) -> None:
        try:
            await self.bot.send_message(int(chat), text)
        except TelegramError as exc:
            raise SendFailed(delivery_outcome(exc, repeatable=False)) from exc
