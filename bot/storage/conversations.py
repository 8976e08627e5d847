"""Conversation state, read and written with single Core statements (this is the hot path of every message)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Conversation, utcnow

TABLE = Conversation.__table__
STATE = ("flow", "step", "data", "menu", "notice", "updated_at")
# built once: constructing statements costs more than running them
_LOAD = select(TABLE.c.flow, TABLE.c.step, TABLE.c.data, TABLE.c.menu, TABLE.c.notice).where(
    TABLE.c.channel == bindparam("channel"), TABLE.c.user_id == bindparam("user_id"),
    TABLE.c.chat_id == bindparam("chat_id"))
_LOAD_LOCKED = _LOAD.with_for_update()


def _upsert(insert: Any) -> Any:
    stmt = insert(TABLE)
    return stmt.on_conflict_do_update(index_elements=["channel", "user_id", "chat_id"],
                                      set_={k: stmt.excluded[k] for k in STATE})


_UPSERT = {True: _upsert(pg_insert), False: _upsert(sqlite_insert)}


@dataclass
class ConversationState:
    """Where one user stands in one chat: the flow, its step, its draft data and the menu last shown."""

    channel: str
    user: str
    chat: str
    flow: str | None = None
    step: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    menu: dict[str, Any] = field(default_factory=dict)
    notice: str | None = None  # to tell the user with the next answer (then cleared)

    def snapshot(self) -> tuple[Any, ...]:
        return self.flow, self.step, self.data, self.menu, self.notice


async def load(session: AsyncSession, channel: str, user: str, chat: str, lock: bool) -> ConversationState:
    """The user's state in this chat (a fresh one if none is stored); `lock` holds the row until commit."""
    query = _LOAD_LOCKED if lock else _LOAD
    conn = await session.connection()  # Core execution: the ORM layer adds nothing to these two statements
    row = (await conn.execute(query, {"channel": channel, "user_id": user, "chat_id": chat})).first()
    if row is None:
        return ConversationState(channel, user, chat)
    return ConversationState(channel, user, chat, row.flow, row.step, dict(row.data or {}), dict(row.menu or {}),
                             row.notice)


async def save(session: AsyncSession, state: ConversationState, postgres: bool) -> None:
    """Insert or update the state in one statement (two messages from a new user cannot both insert)."""
    values = {"channel": state.channel, "user_id": state.user, "chat_id": state.chat, "flow": state.flow,
              "step": state.step, "data": state.data, "menu": state.menu, "notice": state.notice,
              "updated_at": utcnow()}
    await (await session.connection()).execute(_UPSERT[postgres], values)
