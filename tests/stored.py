"""Reading what the bot stored about one user, as staff with the key would (conversation rows hold no platform id
and keep their state sealed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from bot.services import Services
from bot.storage.conversations import key_of, open_state
from bot.storage.models import Conversation


@dataclass
class StoredConversation:
    row: Conversation
    state: dict[str, Any]  # {"user", "data", "menu"}, opened
    notice: str | None  # opened


async def conversation_of(services: Services, channel: str, user: str, chat: str | None = None,
                          ) -> StoredConversation | None:
    vault = services.vault
    where = (Conversation.channel == channel, Conversation.user_id == key_of(vault, channel, user),
             Conversation.chat_id == key_of(vault, channel, chat or user))
    async with services.db.session() as session:
        row = await session.scalar(select(Conversation).where(*where))
    if row is None:
        return None
    return StoredConversation(row, open_state(vault, row.state), vault.open(row.notice) if row.notice else None)
