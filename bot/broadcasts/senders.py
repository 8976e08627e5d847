"""How one resident's copy of a warning is delivered: outbox senders for the warning routes. Logs name no one.

- warn-telegram: a private message; a resident who blocked the bot is unreachable (and skipped next time).
- warn-wechat: a customer-service message; outside the 48 hours after the resident last wrote (or when they
  unfollowed, or the quota is used up) it is kept as a notice for their next message, and counted unreachable.
- warn-notice: web and local chat residents (and WeChat without API access) find it at their next message.
- warn-wecom: a township staff group's WeCom robot (target: the township code).
- relay-telegram, relay-wechat: the copy for a village cadre to forward (bot/broadcasts/relay.py), sent as above.
"""

from __future__ import annotations

from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import MessageLimit
from telegram.error import Forbidden, TelegramError

from bot import subscribers
from bot.channels.telegram_errors import delivery_outcome
from bot.channels.wechat_api import WeChatApi
from bot.channels.wecom import WeComRobot
from bot.outbox import Outcome, Sender
from bot.storage import conversations
from bot.storage.database import Database
from bot.tips.alerts import wechat_text
from bot.vault import Vault


def telegram(bot: Bot, db: Database) -> Sender:
    async def send(target: str, payload: dict[str, Any]) -> Outcome:
        try:
            buttons = [InlineKeyboardButton(label, callback_data=data) for label, data in payload.get("buttons") or []]
            await bot.send_message(int(target), payload["text"][: MessageLimit.MAX_TEXT_LENGTH],
                                   reply_markup=InlineKeyboardMarkup([buttons]) if buttons else None)
        except Forbidden as exc:
            async with db.transaction() as session:
                await subscribers.mark_unreachable(session, "telegram", target)
            return Outcome.unreachable(f"Forbidden: {exc.message}")
        except (TelegramError, ValueError) as exc:
            if isinstance(exc, ValueError):
                return Outcome.failed("not a Telegram chat id")
            return delivery_outcome(exc, repeatable=False)
        return Outcome.sent()

    return send


def wechat(api: WeChatApi, db: Database, vault: Vault) -> Sender:
    async def send(target: str, payload: dict[str, Any]) -> Outcome:
        return await wechat_text(api, db, vault, target, payload["text"],
                                 noticed=Outcome.unreachable("outside WeChat's window: kept as a notice"))

    return send


def notice(db: Database, vault: Vault) -> Sender:
    async def send(target: str, payload: dict[str, Any]) -> Outcome:
        async with db.transaction() as session:
            await conversations.leave_notice(session, vault, payload["channel"], target, payload["text"],
                                             postgres=not db.is_sqlite)
        return Outcome.sent()

    return send


def wecom(robots: dict[str, WeComRobot]) -> Sender:
    async def send(target: str, payload: dict[str, Any]) -> Outcome:
        robot = robots.get(target)
        if robot is None:
            return Outcome.failed(f"no robot configured for township {target}")
        delivery = await robot.send_text(payload["text"])
        return Outcome(delivery.kind, "" if delivery.ok else f"wecom robot: {delivery.reason}")

    return send
