"""Conversation state, read and written with single statements (this is the hot path of every message): plain SQL
through asyncpg on PostgreSQL, Core statements built once on SQLite."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.storage.database import TurnTransaction
from bot.storage.models import Conversation, utcnow

TABLE = Conversation.__table__
STATE = ("flow", "step", "data", "menu", "notice", "updated_at")
_PG_LOAD = ("SELECT flow, step, data, menu, notice FROM conversations"
            " WHERE channel = $1 AND user_id = $2 AND chat_id = $3 FOR UPDATE")
_PG_SAVE = ("INSERT INTO conversations (channel, user_id, chat_id, flow, step, data, menu, notice, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (channel, user_id, chat_id) DO UPDATE SET"
            " flow = excluded.flow, step = excluded.step, data = excluded.data, menu = excluded.menu,"
            " notice = excluded.notice, updated_at = excluded.updated_at")
_LOAD = select(TABLE.c.flow, TABLE.c.step, TABLE.c.data, TABLE.c.menu, TABLE.c.notice).where(
    TABLE.c.channel == bindparam("channel"), TABLE.c.user_id == bindparam("user_id"),
    TABLE.c.chat_id == bindparam("chat_id"))
_INSERT = sqlite_insert(TABLE)
_UPSERT = _INSERT.on_conflict_do_update(index_elements=["channel", "user_id", "chat_id"],
                                        set_={k: _INSERT.excluded[k] for k in STATE})


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


async def load(tx: TurnTransaction, channel: str, user: str, chat: str) -> ConversationState:
    """The user's state in this chat (a fresh one if none is stored); PostgreSQL holds the row until commit
    (SQLite's writers are serialised already)."""
    if tx.postgres:
        row = await tx.driver.fetchrow(_PG_LOAD, channel, user, chat)
    else:
        row = (await tx.connection.execute(_LOAD, {"channel": channel, "user_id": user, "chat_id": chat})).first()
    if row is None:
        return ConversationState(channel, user, chat)
    flow, step, data, menu, notice = row
    return ConversationState(channel, user, chat, flow, step, dict(data or {}), dict(menu or {}), notice)


async def save(tx: TurnTransaction, state: ConversationState) -> None:
    """Insert or update the state in one statement (two messages from a new user cannot both insert)."""
    if tx.postgres:
        await tx.driver.execute(_PG_SAVE, state.channel, state.user, state.chat, state.flow, state.step,
                                json.dumps(state.data), json.dumps(state.menu), state.notice, utcnow())
        return
    values = {"channel": state.channel, "user_id": state.user, "chat_id": state.chat, "flow": state.flow,
              "step": state.step, "data": state.data, "menu": state.menu, "notice": state.notice,
              "updated_at": utcnow()}
    await tx.connection.execute(_UPSERT, values)
