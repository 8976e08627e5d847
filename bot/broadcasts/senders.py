"""How one resident's copy of a warning is delivered: outbox senders for the warning routes. Logs name no one.

- warn-telegram: a private message; a resident who blocked the bot is unreachable (and skipped next time).
- warn-wechat: a customer-service message; when WeChat refuses it because the 48 hours after the resident last
  wrote have passed (or their few messages in them are used), a template message when `wechat.template_id` is set,
  else it is kept as a notice for their next message and counted unreachable. One who unfollowed (43004) is
  unreachable (and skipped next time, until they write again).
- warn-wechat-tpl: a template message (residents known to be outside the 48 hours): 43004 unreachable, no retry;
  "busy" (-1), the API limit (45009), server errors and no connection retried by the outbox with its backoff; an
  expired token is refreshed once (bot/channels/wechat_api.py). No answer: the outbox's unknown outcome.
- warn-notice: web and local chat residents (and WeChat without API access) find it at their next message; a
  WeChat resident outside the 48 hours without a template (payload "held") is counted unreachable.
- warn-wechat-mass: a mass send to a tag (bot/broadcasts/mass.py).
- warn-wecom: a township staff group's WeCom robot (target: the township code).
- relay-telegram, relay-wechat: the copy for a village cadre to forward (bot/broadcasts/relay.py), sent as above.
"""

from __future__ import annotations

from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import MessageLimit
from telegram.error import Forbidden, TelegramError

from bot import subscribers
from bot.broadcasts.segments import WINDOW_CLOSED
from bot.channels.telegram_errors import delivery_outcome, paced
from bot.channels.wechat_api import WeChatApi, WeChatApiError
from bot.channels.wecom import WeComRobot
from bot.config import Settings
from bot.outbox import Outcome, Sender
from bot.storage import conversations
from bot.storage.database import Database
from bot.tips.alerts import WECHAT_GIVE_UP, WECHAT_MAX_TEXT, cut_bytes
from bot.vault import Vault

UNFOLLOWED = 43004  # the resident no longer follows the account
REFUSED_TEMPLATES = 43101  # the resident turned template messages from this account off
WINDOW_SHUT = {45015, 45047}  # outside the 48 hours after they wrote; their messages within them used up
TRY_LATER = {-1, 45009}  # system busy; the API's call limit reached
TITLE = "防范非法集资预警提示"


def telegram(bot: Bot, db: Database) -> Sender:
    async def send(target: str, payload: dict[str, Any]) -> Outcome:
        try:
            buttons = [InlineKeyboardButton(label, callback_data=data) for label, data in payload.get("buttons") or []]
            await bot.send_message(int(target), payload["text"][: MessageLimit.MAX_TEXT_LENGTH],
                                   reply_markup=InlineKeyboardMarkup([buttons]) if buttons else None, **paced(bot))
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


async def _unfollowed(db: Database, openid: str) -> Outcome:
    async with db.transaction() as session:
        await subscribers.mark_unreachable(session, "wechat", openid)
    return Outcome.unreachable(f"no longer follows the account (errcode {UNFOLLOWED})")


async def _noticed(db: Database, vault: Vault, openid: str, text: str, why: str) -> Outcome:
    async with db.transaction() as session:
        await conversations.leave_notice(session, vault, "wechat", openid, text, postgres=not db.is_sqlite)
    return Outcome.unreachable(why)


def template_data(settings: Settings, payload: dict[str, Any]) -> dict[str, str]:
    """The template's fields from the warning's parts (`wechat.template_fields`); nothing is added to them."""
    region = settings.region
    parts = {"title": TITLE, "text": payload["text"], "area": payload.get("area") or region.region,
             "date": payload.get("day") or "", "office": region.office,
             "hotline": f"咨询举报：{region.office} {region.office_phone}，热线 {region.hotline}"}
    most = settings.wechat.template_field_chars
    return {key: parts[part] if len(parts[part]) <= most else parts[part][: most - 1] + "…"
            for key, part in settings.wechat.template_fields.items()}


async def send_template(api: WeChatApi, db: Database, vault: Vault, settings: Settings, openid: str,
                        payload: dict[str, Any]) -> Outcome:
    wechat = settings.wechat
    mini = ({"appid": wechat.template_miniprogram_appid, "pagepath": wechat.template_miniprogram_path}
            if wechat.template_miniprogram_appid else None)
    try:
        result = await api.send_template(openid, wechat.template_id, template_data(settings, payload),
                                         url=wechat.template_url, miniprogram=mini)
    except WeChatApiError as exc:  # no answer: unknown if the request may have reached WeChat, else try later
        return Outcome.unknown(str(exc)) if exc.unsure else Outcome.retry(str(exc))
    if result.ok:
        return Outcome.sent()
    if result.errcode == UNFOLLOWED:
        return await _unfollowed(db, openid)
    if result.errcode == REFUSED_TEMPLATES:
        return await _noticed(db, vault, openid, payload["text"],
                              f"turned template messages off (errcode {REFUSED_TEMPLATES}): kept as a notice")
    if result.errcode in TRY_LATER:
        return Outcome.retry(f"errcode {result.errcode}")
    return Outcome.failed(f"template message refused: errcode {result.errcode}")


def wechat(api: WeChatApi, db: Database, vault: Vault, settings: Settings | None = None) -> Sender:
    """warn-wechat and relay-wechat: a customer-service message; beyond the window a template message (residents'
    copies, when `settings` configure one) or a notice for their next message."""

    async def send(target: str, payload: dict[str, Any]) -> Outcome:
        try:
            result = await api.send_text(target, cut_bytes(payload["text"], WECHAT_MAX_TEXT))
        except WeChatApiError as exc:
            return Outcome.retry(str(exc))
        if result.ok:
            return Outcome.sent()
        if result.errcode == UNFOLLOWED:
            return await _unfollowed(db, target)
        if result.errcode in WINDOW_SHUT:
            # a resident's copy goes as a template (a cadre's has its own words to reply with)
            if settings is not None and settings.wechat.template_id and "area" in payload:
                return await send_template(api, db, vault, settings, target, payload)
            return await _noticed(db, vault, target, payload["text"], f"{WINDOW_CLOSED} (errcode {result.errcode})")
        if result.errcode in WECHAT_GIVE_UP:
            return Outcome.failed(f"errcode {result.errcode}")
        return Outcome.retry(f"errcode {result.errcode}")

    return send


def wechat_template(api: WeChatApi, db: Database, vault: Vault, settings: Settings) -> Sender:
    async def send(target: str, payload: dict[str, Any]) -> Outcome:
        return await send_template(api, db, vault, settings, target, payload)

    return send


def notice(db: Database, vault: Vault) -> Sender:
    async def send(target: str, payload: dict[str, Any]) -> Outcome:
        async with db.transaction() as session:
            await conversations.leave_notice(session, vault, payload["channel"], target, payload["text"],
                                             postgres=not db.is_sqlite)
        return Outcome.unreachable(payload["held"]) if payload.get("held") else Outcome.sent()

    return send


def wecom(robots: dict[str, WeComRobot]) -> Sender:
    async def send(target: str, payload: dict[str, Any]) -> Outcome:
        robot = robots.get(target)
        if robot is None:
            return Outcome.failed(f"no robot configured for township {target}")
        delivery = await robot.send_text(payload["text"])
        return Outcome(delivery.kind, "" if delivery.ok else f"wecom robot: {delivery.reason}")

    return send
