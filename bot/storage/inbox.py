"""The WeChat inbox: each message once. A message's row is written in the same transaction as the conversation
it changed, so a retry either finds the stored answer or (still in flight) waits for it; never a second answer."""

from __future__ import annotations

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot.storage.models import WeChatInbox, utcnow

TABLE = WeChatInbox.__table__
# built once: constructing statements costs more than running them
_CLAIM = {postgres: insert(TABLE).values(key=bindparam("key"), reply=bindparam("reply"), status=bindparam("status"),
                                          created_at=bindparam("created_at")).on_conflict_do_nothing()
          for postgres, insert in ((True, pg_insert), (False, sqlite_insert))}
_STORED = select(TABLE.c.reply).where(TABLE.c.key == bindparam("key"))
_MARK = update(TABLE).where(TABLE.c.key == bindparam("k")).values(status=bindparam("status"))


async def claim(session: AsyncSession, key: str, reply: str | None, status: str, postgres: bool) -> bool:
    """Record the message as handled; False when it was already (the caller must then undo its transaction)."""
    values = {"key": key, "reply": reply, "status": status, "created_at": utcnow()}
    return bool((await (await session.connection()).execute(_CLAIM[postgres], values)).rowcount)


async def stored_reply(conn: AsyncConnection, key: str) -> str | None:
    return (await conn.execute(_STORED, {"key": key})).scalar()


async def mark(conn: AsyncConnection, key: str, status: str) -> None:
    """What became of an answer sent later (customer-service message sent, or the platform's error code)."""
    await conn.execute(_MARK, {"k": key, "status": status})
