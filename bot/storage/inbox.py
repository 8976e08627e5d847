"""The inbox: each platform message once (WeChat messages and events, Telegram updates). A message's row is
written in the same statement (or transaction) as the conversation it changed, so a redelivery either finds the
stored answer or (still in flight) waits for it; never a second answer. Rows are kept `RETENTION` (`prune`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot.storage.database import TurnTransaction
from bot.storage.models import InboxRecord, utcnow

TABLE = InboxRecord.__table__
RETENTION = timedelta(days=2)
# the columns in the order of `Claim.row`; conversations.py writes the same row with the conversation
PG_INSERT = f"INSERT INTO {TABLE.name} (key, reply, status, created_at)"
# the claim runs with every message: plain SQL through asyncpg on PostgreSQL, a Core statement built once on SQLite
_PG_CLAIM = f"{PG_INSERT} VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
_CLAIM = sqlite_insert(TABLE).values(key=bindparam("key"), reply=bindparam("reply"), status=bindparam("status"),
                                     created_at=bindparam("created_at")).on_conflict_do_nothing()
_STORED = select(TABLE.c.reply).where(TABLE.c.key == bindparam("key"))
_MARK = update(TABLE).where(TABLE.c.key == bindparam("k")).values(status=bindparam("status"))


@dataclass(frozen=True)
class Claim:
    """A message's record: its key, the passive reply stored for WeChat's retries, and what became of it."""

    key: str
    reply: str | None
    status: str

    def row(self) -> dict[str, Any]:
        """The row, columns in table order."""
        return {"key": self.key, "reply": self.reply, "status": self.status, "created_at": utcnow()}


async def claim(tx: TurnTransaction, record: Claim) -> bool:
    """Record the message as handled (the conversation unchanged); False when it was already."""
    if tx.postgres:  # the turn's last statement: in its transaction if it opened one, on its own otherwise
        return await tx.driver.execute(_PG_CLAIM, *record.row().values()) == "INSERT 0 1"
    return (await tx.connection.execute(_CLAIM, record.row())).rowcount == 1


async def record(session: AsyncSession, key: str, postgres: bool) -> bool:
    """Record a platform event handled outside a conversation turn (in the caller's transaction); False when it
    was recorded before."""
    insert = pg_insert if postgres else sqlite_insert
    row = Claim(key, None, "answered").row()
    result = await session.execute(insert(TABLE).values(**row).on_conflict_do_nothing().returning(TABLE.c.key))
    return result.first() is not None


async def prune(session: AsyncSession, now: datetime | None = None) -> int:
    """Forget records older than RETENTION: platforms redeliver within minutes (WeChat) or hours (Telegram)."""
    result = await session.execute(delete(TABLE).where(TABLE.c.created_at < (now or utcnow()) - RETENTION))
    return result.rowcount or 0


class Once:
    """The engine's guard (`bot.engine.Guard`) for a message known by a key, whose answer need not be stored: a
    platform that delivers it again (Telegram) gets no second answer."""

    def __init__(self, key: str) -> None:
        self.key = key

    def claim(self, replies: list[Any]) -> Claim:
        return Claim(self.key, None, "answered")

    def unclaim(self) -> None:
        pass


async def stored_reply(conn: AsyncConnection, key: str) -> str | None:
    return (await conn.execute(_STORED, {"key": key})).scalar()


async def mark(conn: AsyncConnection, key: str, status: str) -> None:
    """What became of an answer sent later (customer-service message sent, or the platform's error code)."""
    await conn.execute(_MARK, {"k": key, "status": status})
