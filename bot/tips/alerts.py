"""New-tip alerts to staff and status notices to reporters, delivered through the outbox (bot/outbox.py).

`announce` and `tell_reporter` only write outbox rows (or a conversation notice) in the caller's transaction; the
senders here deliver them: the Telegram staff chat (with 认领 / 标记核查中 buttons), the WeCom group robot, and
WeChat customer-service messages. Alerts never carry who reported a tip, only whether it was 实名 or 匿名. A
reporter's user id stays sealed in the outbox row and is opened by the sender just before sending.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import MessageLimit
from telegram.error import TelegramError

from bot.channels.telegram_errors import delivery_outcome, paced
from bot.channels.wechat_api import WeChatApi, WeChatApiError
from bot.channels.wecom import WeComRobot
from bot.config import Settings
from bot.outbox import Outcome, Sender, enqueue
from bot.storage import conversations
from bot.storage.database import Database
from bot.storage.models import Tip
from bot.tips import ledger
from bot.vault import SealError, Vault
from knowledge.schema import load_taxonomy

log = logging.getLogger(__name__)
ALERT_PRIORITY = 1
QUEUED_CHANNELS = ("telegram", "wechat")  # reporters on these can be messaged; others see a notice next time
WECHAT_NOTICE_INSTEAD = {45015, 45047, 43004}  # window closed, quota used up, unfollowed: they see it next time
WECHAT_GIVE_UP = {40003, 44004, 45002}  # unknown user, empty or too long text: trying again changes nothing
WECHAT_MAX_TEXT = 2048  # bytes

MARKDOWN_SAFE = str.maketrans({"*": "＊", "`": "｀", "[": "［", "]": "］", "<": "＜", ">": "＞", "#": "＃"})


@cache
def _category_names() -> dict[str, str]:
    try:
        return {slug: c.name for slug, c in load_taxonomy().items()}
    except (OSError, ValueError, KeyError):
        return {}


def alert_text(tip: Tip, evidence_count: int) -> str:
    """The staff alert for a new tip: what, where, how much, and what to do; never who reported it."""
    lines = [f"【新线索】{tip.receipt}"]
    if tip.category:
        lines.append(f"类别：{_category_names().get(tip.category, tip.category)}")
    if place := ledger.place_of(tip):
        lines.append(f"地点：{place}")
    if tip.money:
        lines.append(f"金额/人数：{tip.money}")
    if tip.happened:
        lines.append(f"时间：{tip.happened}")
    lines.append(f"情况：{ledger.summary(tip, 200)}")
    lines.append(f"证据：{evidence_count} 份" if evidence_count else "证据：无")
    lines.append("举报人：匿名" if tip.anonymous else "举报人：实名（身份已加密，经办人按权限查看）")
    lines.append(f"下一步：认领 /take {tip.receipt}；开始核查 /verify {tip.receipt}")
    return "\n".join(lines)


def alert_markdown(tip: Tip, evidence_count: int) -> str:
    """The alert for the WeCom robot: the same lines, the first in bold, user text unable to format anything."""
    first, _, rest = alert_text(tip, evidence_count).translate(MARKDOWN_SAFE).partition("\n")
    return f"**{first}**\n{rest}"


async def announce(session: AsyncSession, settings: Settings, tip: Tip, evidence_count: int, postgres: bool) -> None:
    """Queue the new-tip alert for every configured staff destination (once per tip, whatever retries). A tip from
    a platform account (WeChat, Telegram) or a named one goes ahead of anonymous web tips: a flood of junk tips
    from throw-away web ids cannot hold back real ones."""
    tg = settings.telegram
    priority = ALERT_PRIORITY if tip.channel in QUEUED_CHANNELS or not tip.anonymous else 0
    if settings.tips.alert_telegram and tg.token and tg.staff_chat_id:
        buttons = [["认领", f"/take {tip.receipt}"], ["标记核查中", f"/verify {tip.receipt}"]]
        await enqueue(session, dedup=f"tip-alert:{tip.receipt}:telegram", channel="telegram",
                      target=str(tg.staff_chat_id), payload={"text": alert_text(tip, evidence_count),
                                                             "buttons": buttons}, postgres=postgres,
                      priority=priority)
    if settings.tips.alert_wecom and settings.wecom.robot_webhook_url:
        await enqueue(session, dedup=f"tip-alert:{tip.receipt}:wecom", channel="wecom", target="robot",
                      payload={"markdown": alert_markdown(tip, evidence_count)}, postgres=postgres,
                      priority=priority)


async def tell_reporter(session: AsyncSession, settings: Settings, vault: Vault, tip: Tip, text: str, postgres: bool,
                        *, key: str | None = None) -> None:
    """Tell the reporter about their tip (by default: its new status, once per status).

    Telegram and WeChat reporters get a message through the outbox; everyone else (web, local), and reporters on a
    platform this deployment cannot send on, find the text as a notice at their next message.
    """
    if can_message(settings, tip.channel):
        await enqueue(session, dedup=f"tip-status:{tip.receipt}:{key or tip.status}"[:128], channel=tip.channel,
                      target=tip.reporter_sealed, payload={"text": text, "sealed": True}, postgres=postgres)
        return
    await conversations.leave_notice(session, vault, tip.channel, vault.open(tip.reporter_sealed), text, postgres)


def can_message(settings: Settings, channel: str) -> bool:
    if channel == "telegram":
        return bool(settings.telegram.token)
    if channel == "wechat":
        return settings.wechat.can_send
    return False


# -- senders ----------------------------------------------------------------------------------------------------------
def telegram_sender(bot: Bot, vault: Vault) -> Sender:
    """payload {"text", "buttons": [[label, callback_data], …], "sealed"}: target is a chat id, or sealed."""

    async def send(target: str, payload: dict[str, Any]) -> Outcome:
        try:
            chat_id = int(vault.open(target) if payload.get("sealed") else target)
        except (SealError, ValueError):
            return Outcome.failed("target cannot be read")
        buttons = [InlineKeyboardButton(label, callback_data=data) for label, data in payload.get("buttons") or []]
        try:
            await bot.send_message(chat_id, _cut(payload["text"], MessageLimit.MAX_TEXT_LENGTH),
                                   reply_markup=InlineKeyboardMarkup([buttons]) if buttons else None, **paced(bot))
        except TelegramError as exc:
            return delivery_outcome(exc, repeatable=False)
        return Outcome.sent()

    return send


def wecom_sender(robot: WeComRobot) -> Sender:
    """payload {"markdown"}: to the staff group's robot (which keeps its rate limit and retries what surely was not
    sent)."""

    async def send(target: str, payload: dict[str, Any]) -> Outcome:
        delivery = await robot.send_markdown(payload["markdown"])
        return Outcome(delivery.kind, "" if delivery.ok else f"wecom robot: {delivery.reason}")

    return send


def wechat_sender(api: WeChatApi, db: Database, vault: Vault) -> Sender:
    """payload {"text", "sealed"}: a customer-service message; outside the 48-hour window it becomes a notice."""

    async def send(target: str, payload: dict[str, Any]) -> Outcome:
        try:
            openid = vault.open(target) if payload.get("sealed") else target
        except SealError:
            return Outcome.failed("target cannot be read")
        return await wechat_text(api, db, vault, openid, payload["text"], noticed=Outcome.sent())

    return send


async def wechat_text(api: WeChatApi, db: Database, vault: Vault, openid: str, text: str, *,
                      noticed: Outcome) -> Outcome:
    """Send a customer-service text; when WeChat will not take one for this user now (window closed, quota used
    up, unfollowed) leave it as a notice for their next message and return `noticed`."""
    try:
        result = await api.send_text(openid, cut_bytes(text, WECHAT_MAX_TEXT))
    except WeChatApiError as exc:
        return Outcome.retry(str(exc))
    if result.ok:
        return Outcome.sent()
    if result.errcode in WECHAT_NOTICE_INSTEAD:
        async with db.transaction() as session:
            await conversations.leave_notice(session, vault, "wechat", openid, text, postgres=not db.is_sqlite)
        log.info("wechat: customer-service message refused (errcode %d); left as a notice", result.errcode)
        return noticed
    if result.errcode in WECHAT_GIVE_UP:
        return Outcome.failed(f"errcode {result.errcode}")
    return Outcome.retry(f"errcode {result.errcode}")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cut_bytes(text: str, limit: int) -> str:
    raw = text.encode()
    return text if len(raw) <= limit else raw[: limit - 3].decode(errors="ignore") + "…"
