"""Conversation state, read and written with single statements (this is the hot path of every message): plain SQL
through asyncpg on PostgreSQL, Core statements built once on SQLite.

Nothing in a conversation row names the person or says what they wrote: the row is found by keyed fingerprints of
the user and the chat (`key_of`), and the draft, the menu (whose option arguments can hold a tip's receipt) and the
notice are sealed with the secret key (bot/vault.py). Only the flow and its step are plain, for the jobs that tidy
unfinished drafts away.

A conversation is read without a lock; it is written back only if its version is still the one read, together
with the channel's exactly-once record (`bot/storage/inbox.py`) in the same statement. Otherwise the turn raises
`Conflict`, nothing of it is kept, and the engine answers the message again from the newer state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from asyncpg.exceptions import UniqueViolationError
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage import inbox
from bot.storage.database import Conflict, TurnTransaction
from bot.storage.models import Conversation, utcnow
from bot.vault import Vault

TABLE = Conversation.__table__
STATE = ("flow", "step", "state", "notice", "updated_at", "version")
_PG_LOAD = ("SELECT flow, step, state, notice, updated_at, version FROM conversations"
            " WHERE channel = $1 AND user_id = $2 AND chat_id = $3")
_PG_LOAD_LOCKED = _PG_LOAD + " FOR UPDATE"
# $9: the version read (NULL: there was no row, so any row found now is someone else's)
_PG_SAVE = ("INSERT INTO conversations (channel, user_id, chat_id, flow, step, state, notice, updated_at, version)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, COALESCE($9::integer, 0) + 1)"
            " ON CONFLICT (channel, user_id, chat_id) DO UPDATE SET"
            " flow = excluded.flow, step = excluded.step, state = excluded.state,"
            " notice = excluded.notice, updated_at = excluded.updated_at, version = excluded.version"
            " WHERE conversations.version = $9")
# the conversation and the message's record in one statement: both or neither (a record already there is a
# unique violation, which undoes the conversation's write too)
_PG_SAVE_CLAIM = (f"WITH saved AS ({_PG_SAVE} RETURNING 1) {inbox.PG_INSERT}"
                  " SELECT $10::varchar, $11::text, $12::varchar, $13::timestamptz FROM saved")
_LOAD = select(TABLE.c.flow, TABLE.c.step, TABLE.c.state, TABLE.c.notice, TABLE.c.updated_at,
               TABLE.c.version).where(
    TABLE.c.channel == bindparam("channel"), TABLE.c.user_id == bindparam("user_id"),
    TABLE.c.chat_id == bindparam("chat_id"))
_INSERT = sqlite_insert(TABLE)
_UPSERT = _INSERT.on_conflict_do_update(index_elements=["channel", "user_id", "chat_id"],
                                        set_={k: _INSERT.excluded[k] for k in STATE},
                                        where=TABLE.c.version == bindparam("expected"))


def key_of(vault: Vault, channel: str, who: str) -> str:
    """The stored stand-in for a user or chat id: a keyed fingerprint (the same for a user and their private chat)."""
    return vault.fingerprint("conversation", channel, who)


def open_state(vault: Vault, sealed: str | None) -> dict[str, Any]:
    """{"user", "data", "menu"} of a stored conversation (empty parts when nothing is kept)."""
    return json.loads(vault.open(sealed)) if sealed else {}


def _state_text(user: str, data: dict[str, Any], menu: dict[str, Any]) -> str:
    return json.dumps({"user": user, "data": data, "menu": menu}, ensure_ascii=False, separators=(",", ":"))


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
    user_key: str = ""  # the row's key_of(user) and key_of(chat)
    chat_key: str = ""
    # as read: the sealed texts and what they hold, so an unchanged part is written back without sealing it again
    sealed: tuple[str | None, str | None] = (None, None)
    opened: tuple[str | None, str | None] = (None, None)

    def snapshot(self) -> str:
        """The state as text, to tell whether a turn changed it (cheaper than a deep copy to compare with)."""
        return json.dumps((self.flow, self.step, self.data, self.menu, self.notice), ensure_ascii=False)

    def sealed_for_storage(self, vault: Vault) -> tuple[str | None, str | None]:
        """The sealed state and notice to store (NULL when there is nothing to keep)."""
        text = _state_text(self.user, self.data, self.menu) if self.data or self.menu else None
        state = self.sealed[0] if text == self.opened[0] else vault.seal(text) if text else None
        notice = self.sealed[1] if self.notice == self.opened[1] else vault.seal(self.notice) if self.notice else None
        return state, notice


async def load(tx: TurnTransaction, vault: Vault, channel: str, user: str, chat: str) -> ConversationState:
    """The user's state in this chat (a fresh one if none is stored); a locked turn holds the row until commit
    (PostgreSQL; SQLite's writers are serialised already)."""
    user_key = key_of(vault, channel, user)
    chat_key = user_key if chat == user else key_of(vault, channel, chat)
    if tx.postgres:
        row = await tx.driver.fetchrow(_PG_LOAD_LOCKED if tx.locked else _PG_LOAD, channel, user_key, chat_key)
    else:
        row = (await tx.connection.execute(_LOAD, {"channel": channel, "user_id": user_key,
                                                   "chat_id": chat_key})).first()
    if row is None:
        return ConversationState(channel, user, chat, user_key=user_key, chat_key=chat_key)
    flow, step, sealed_state, sealed_notice, updated_at, version = row
    text = vault.open(sealed_state) if sealed_state else None
    state = json.loads(text) if text else {}
    notice = vault.open(sealed_notice) if sealed_notice else None
    return ConversationState(channel, user, chat, flow, step, dict(state.get("data") or {}),
                             dict(state.get("menu") or {}), notice, updated_at, version, user_key, chat_key,
                             (sealed_state, sealed_notice), (text, notice))


async def save(tx: TurnTransaction, vault: Vault, state: ConversationState, moved: bool,
               claim: inbox.Claim | None) -> bool:
    """The turn's last write (after the session's flush): the state, provided nobody wrote it since it was read,
    and the channel's record of the message (`claim`). The state is written when the turn `moved` it, and when the
    turn stored more through the session (so it is ordered with the user's other messages; `updated_at` then stays,
    as it tells how long a draft has been left alone). False: the message was answered before (undo the turn).
    Raises `Conflict` when the conversation was changed meanwhile."""
    if not (moved or tx.wrote):
        return claim is None or await inbox.claim(tx, claim)
    updated_at = utcnow() if moved or state.updated_at is None else state.updated_at
    sealed, notice = state.sealed_for_storage(vault)
    if tx.postgres:
        values = (state.channel, state.user_key, state.chat_key, state.flow, state.step, sealed, notice, updated_at,
                  state.version)
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
    values = {"channel": state.channel, "user_id": state.user_key, "chat_id": state.chat_key, "flow": state.flow,
              "step": state.step, "state": sealed, "notice": notice,
              "updated_at": updated_at, "version": (state.version or 0) + 1, "expected": state.version}
    if (await tx.connection.execute(_UPSERT, values)).rowcount == 0:
        raise Conflict
    return claim is None or await inbox.claim(tx, claim)


async def leave_notice(session: AsyncSession, vault: Vault, channel: str, user: str, text: str,
                       postgres: bool) -> None:
    """Add a text to the user's private conversation (sealed), shown at their next message (the same text once)."""
    user_key = key_of(vault, channel, user)
    key = (TABLE.c.channel == channel, TABLE.c.user_id == user_key, TABLE.c.chat_id == user_key)
    insert = pg_insert if postgres else sqlite_insert
    await session.execute(insert(TABLE).values(channel=channel, user_id=user_key, chat_id=user_key,
                                               updated_at=utcnow()).on_conflict_do_nothing())
    sealed = await session.scalar(select(TABLE.c.notice).where(*key).with_for_update())
    current = vault.open(sealed) if sealed else None
    if current and text in current:
        return
    # updated_at stays: a notice must not keep a stale draft alive; the version moves, so a message being answered
    # from the row as it was is answered again (with the notice) instead of writing over it
    await session.execute(update(TABLE).where(*key).values(
        notice=vault.seal(f"{current}\n\n{text}" if current else text), updated_at=TABLE.c.updated_at,
        version=TABLE.c.version + 1))


async def forget_idle(session: AsyncSession, days: float, now: datetime | None = None) -> int:
    """Delete the conversations of users who have not written for `days` (news still waiting in them too)."""
    result = await session.execute(delete(TABLE).where(TABLE.c.updated_at < (now or utcnow()) - timedelta(days=days)))
    return result.rowcount or 0
