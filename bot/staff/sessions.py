"""Console sessions: the browser keeps a random token in a signed cookie; the database keeps the token's hash,
the session's CSRF token and when it was last used. A session unused for `console.idle_minutes` is over; ending
an account's sessions (new password, disabled, signed out) takes effect on the next request."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import StaffAccount, StaffSession, utcnow
from bot.tips.ledger import as_utc

TOUCH_EVERY = timedelta(seconds=60)  # last_seen is written at most this often


@dataclass(frozen=True)
class Signed:
    account: StaffAccount
    csrf: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(session: AsyncSession, account: StaffAccount) -> tuple[str, str]:
    """A new session for the account: (token for the cookie, CSRF token)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(StaffSession(token_hash=_hash(token), account_id=account.id, csrf=csrf))
    return token, csrf


async def current(session: AsyncSession, token: str, idle_minutes: float, now: datetime | None = None) -> Signed | None:
    """The signed-in account of a session token, or None (unknown, idle too long, account disabled)."""
    now = now or utcnow()
    row = await session.get(StaffSession, _hash(token))
    if row is None:
        return None
    if now - as_utc(row.last_seen) > timedelta(minutes=idle_minutes):
        await session.delete(row)
        return None
    account = await session.get(StaffAccount, row.account_id)
    if account is None or account.disabled:
        return None
    if now - as_utc(row.last_seen) > TOUCH_EVERY:
        row.last_seen = now
    return Signed(account, row.csrf)


async def close_session(session: AsyncSession, token: str) -> None:
    await session.execute(delete(StaffSession).where(StaffSession.token_hash == _hash(token)))


async def forget_idle(session: AsyncSession, idle_minutes: float, now: datetime | None = None) -> int:
    """Delete sessions idle past expiry (they could not be used anyway)."""
    cutoff = (now or utcnow()) - timedelta(minutes=idle_minutes)
    result = await session.execute(delete(StaffSession).where(StaffSession.last_seen < cutoff))
    return result.rowcount or 0
