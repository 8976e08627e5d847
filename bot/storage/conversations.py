"""Conversation state, read and written with single statements (this is the hot path of every message): plain SQL
through asyncpg on PostgreSQL, Core statements built once on SQLite.

A conversation is read without a lock; it is written back only if its version is still the one read, together
with the channel's exactly-once record (`bot/storage/inbox.py`) in the same statement. Otherwise the turn raises
`Conflict`, nothing of it is kept, and the engine answers the message again from the newer state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asyncpg.exceptions import UniqueViolationError
from sqlalchemy import bindparam, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.storage import inbox
from bot.storage.database import Conflict, TurnTransaction
from bot.storage.models import Conversation, utcnow

TABLE = Conversation.__table__
STATE = ("flow", "step", "data", "menu", "notice", "updated_at", "version")
_PG_LOAD = ("SELECT flow, step, data, menu, notice, updated_at, version FROM conversations"
            " WHERE channel = $1 AND user_id = $2 AND chat_id = $3")
_PG_LOAD_LOCKED = _PG_LOAD + " FOR UPDATE"
# $10: the version read (NULL: there was no row, so any row found now is someone else's)
_PG_SAVE = ("INSERT INTO conversations (channel, user_id, chat_id, flow, step, data, menu, notice, updated_at, version)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, COALESCE($10::integer, 0) + 1)"
            " ON CONFLICT (channel, user_id, chat_id) DO UPDATE SET"
            " flow = excluded.flow, step = excluded.step, data = excluded.data, menu = excluded.menu,"
            " notice = excluded.notice, updated_at = excluded.updated_at, version = excluded.version"
            " WHERE conversations.version = $10")
# the conversation and the message's record in one statement: both or neither (a record already there is a
# unique violation, which undoes the conversation's write too)
_PG_SAVE_CLAIM = (f"WITH saved AS ({_PG_SAVE} RETURNING 1) {inbox.PG_INSERT}"
                  " SELECT $11::varchar, $12::text, $13::varchar, $14::timestamptz FROM saved")
_LOAD = select(TABLE.c.flow, TABLE.c.step, TABLE.c.data, TABLE.c.menu, TABLE.c.notice, TABLE.c.updated_at,
               TABLE.c.version).where(
    TABLE.c.channel == bindparam("channel"), TABLE.c.user_id == bindparam("user_id"),
    TABLE.c.chat_id == bindparam("chat_id"))
_INSERT = sqlite_insert(TABLE)
_UPSERT = _INSERT.on_conflict_do_update(index_elements=["channel", "user_id", "chat_id"],
                                        set_={k: _INSERT.excluded[k] for k in STATE},
                                        where=TABLE.c.version == bindparam("expected"))


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
    updated_at: datetime | None = None  # when the state last changed, as read
    version: int | None = None  # as read; None: not stored yet

    def snapshot(self) -> str:
        """The state as text, to tell whether a turn changed it (cheaper than a deep copy to compare with)."""
        return json.dumps((self.flow, self.step, self.data, self.menu, self.notice), ensure_ascii=False)


async def load(tx: TurnTransaction, channel: str, user: str, chat: str) -> ConversationState:
    """The user's state in this chat (a fresh one if none is stored); a locked turn holds the row until commit
    (PostgreSQL; SQLite's writers are serialised already)."""
    if tx.postgres:
        row = await tx.driver.fetchrow(_PG_LOAD_LOCKED if tx.locked else _PG_LOAD, channel, user, chat)
    else:
        row = (await tx.connection.execute(_LOAD, {"channel": channel, "user_id": user, "chat_id": chat})).first()
    if row is None:
        return ConversationState(channel, user, chat)
    flow, step, data, menu, notice, updated_at, version = row
    return ConversationState(channel, user, chat, flow, step, dict(data or {}), dict(menu or {}), notice, updated_at,
                             version)


async def save(tx: TurnTransaction, state: ConversationState, moved: bool, claim: inbox.Claim | None) -> bool:
    """The turn's last write (after the session's flush): the state, provided nobody wrote it since it was read,
    and the channel's record of the message (`claim`). The state is written when the turn `moved` it, and when the
    turn stored more through the session (so it is ordered with the user's other messages; `updated_at` then stays,
    as it tells how long a draft has been left alone). False: the message was answered before (undo the turn).
    Raises `Conflict` when the conversation was changed meanwhile."""
    if not (moved or tx.wrote):
        return claim is None or await inbox.claim(tx, claim)
    updated_at = utcnow() if moved or state.updated_at is None else state.updated_at
    if tx.postgres:
        values = (state.channel, state.user, state.chat, state.flow, state.step, json.dumps(state.data),
                  json.dumps(state.menu), state.notice, updated_at, state.version)
        if claim is None:
            saved = await tx.driver.execute(_PG_SAVE, *values) != "INSERT 0 0"
        else:
            try:
                saved = await tx.driver.execute(_PG_SAVE_CLAIM, *values, *claim.row().values()) != "INSERT 0 0"
            except UniqueViolationError as exc:
                if exc.table_name != inbox.TABLE.name:
                    raise
                return False
        if not saved:
            raise Conflict
        return True
    values = {"channel": state.channel, "user_id": state.user, "chat_id": state.chat, "flow": state.flow,
              "step": state.step, "data": state.data, "menu": state.menu, "notice": state.notice,
              "updated_at": updated_at, "version": (state.version or 0) + 1, "expected": state.version}
    if (await tx.connection.execute(_UPSERT, values)).rowcount == 0:
        raise Conflict
    return claim is None or await inbox.claim(tx, claim)
