"""Unfinished reports: a resident who stops half-way is reminded once (Telegram, WeChat); the draft itself is
dropped once `tips.draft_hours` have passed: at their next message (handlers/report.py) or by `drop_expired`.

`remind_abandoned` is a scheduler job (bot/scheduler.py). It is safe to run in several processes at once: each
reminder is an outbox row with its own dedup key, so it is queued once whoever finds the draft first.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from bot.outbox import enqueue
from bot.services import Services
from bot.storage import conversations
from bot.storage.models import Conversation, utcnow
from bot.tips.alerts import can_message

REMINDER = ("您的举报还没填完，内容先替您保存着。\n"
            "回复“继续”就能接着填；不想举报了，回复“取消”。草稿保存 {hours:g} 小时。")


async def remind_abandoned(services: Services, now: datetime | None = None) -> int:
    """Queue one reminder for each report draft left alone longer than `tips.remind_after_minutes`."""
    settings, db = services.settings, services.db
    now = now or utcnow()
    idle_since = now - timedelta(minutes=settings.tips.remind_after_minutes)
    oldest = now - timedelta(hours=settings.tips.draft_hours)
    queued = 0
    async with db.transaction() as session:
        drafts = await session.execute(
            select(Conversation.id, Conversation.channel, Conversation.state)
            .where(Conversation.flow == "report", Conversation.updated_at < idle_since,
                   Conversation.updated_at > oldest, Conversation.user_id == Conversation.chat_id))
        for row in drafts.all():
            if not can_message(settings, row.channel):
                continue  # the web chat cannot be reached; the draft waits for the next visit
            state = conversations.open_state(services.vault, row.state)
            if not state.get("user"):
                continue
            started = (state.get("data") or {}).get("started", "")
            queued += await enqueue(session, dedup=f"draft-reminder:{row.id}:{started}"[:128], channel=row.channel,
                                    target=services.vault.seal(state["user"]),
                                    payload={"text": REMINDER.format(hours=settings.tips.draft_hours), "sealed": True},
                                    postgres=not db.is_sqlite)
    return queued


async def drop_expired(services: Services, now: datetime | None = None) -> int:
    """Delete report drafts older than `tips.draft_hours`, so what residents typed is not kept past that."""
    oldest = (now or utcnow()) - timedelta(hours=services.settings.tips.draft_hours)
    async with services.db.transaction() as session:
        result = await session.execute(update(Conversation).where(Conversation.flow == "report",
                                                                  Conversation.updated_at < oldest)
                                       .values(flow=None, step=None, state=None,
                                               version=Conversation.version + 1))
    return result.rowcount or 0

