"""Group chats the bot has been added to or removed from."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import GroupChat


async def record(session: AsyncSession, channel: str, chat: str, title: str, active: bool) -> None:
    group = await session.scalar(select(GroupChat).where(GroupChat.channel == channel, GroupChat.chat_id == chat))
    if group is None:
        group = GroupChat(channel=channel, chat_id=chat)
        session.add(group)
    group.title, group.active = title[:256], active
