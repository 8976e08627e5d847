"""Subscriptions to warning broadcasts, with the profile that puts a resident in audience segments."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.database import TurnTransaction
from bot.storage.models import Subscriber, utcnow

AUDIENCES = {"elderly": "老年人", "student": "学生", "other": "其他"}
WINDOW_CHANNELS = ("wechat",)  # platforms that let us message a user only for a while after they wrote
SEEN_EVERY = timedelta(minutes=10)  # `last_seen` is written at most this often (so it may be this much early)
_TABLE = Subscriber.__table__
_SEEN = (update(_TABLE).where(_TABLE.c.channel == bindparam("on"), _TABLE.c.user_id == bindparam("who"),
                              or_(_TABLE.c.last_seen.is_(None), _TABLE.c.last_seen < bindparam("stale"),
                                  _TABLE.c.reachable.is_(False)))
         .values(last_seen=bindparam("at"), reachable=True))
_REACHABLE = (update(_TABLE).where(_TABLE.c.channel == bindparam("on"), _TABLE.c.user_id == bindparam("who"),
                                   _TABLE.c.reachable.is_(False)).values(reachable=True))
_PG_REACHABLE = "UPDATE subscribers SET reachable = true WHERE channel = $1 AND user_id = $2 AND NOT reachable"
_PG_SEEN = ("UPDATE subscribers SET last_seen = $4, reachable = true WHERE channel = $1 AND user_id = $2"
            " AND (last_seen IS NULL OR last_seen < $3 OR NOT reachable)")


async def find(session: AsyncSession, channel: str, user: str) -> Subscriber | None:
    return await session.scalar(select(Subscriber).where(Subscriber.channel == channel, Subscriber.user_id == user))


async def subscribe(session: AsyncSession, channel: str, user: str, audience: str,
                    township: str | None, village: str | None) -> Subscriber:
    sub = await find(session, channel, user)
    if sub is None:
        sub = Subscriber(channel=channel, user_id=user, audience=audience)
        session.add(sub)
    sub.audience, sub.township, sub.village, sub.active = audience, township, village, True
    return sub


async def remember_audience(session: AsyncSession, channel: str, user: str, audience: str) -> Subscriber:
    """Keep who the resident is (for quizzes) without subscribing them to warnings."""
    sub = await find(session, channel, user)
    if sub is None:
        sub = Subscriber(channel=channel, user_id=user, audience=audience, active=False)
        session.add(sub)
    sub.audience = audience
    return sub


async def unsubscribe(session: AsyncSession, channel: str, user: str) -> bool:
    """Stop warnings; False when the user had no active subscription."""
    sub = await find(session, channel, user)
    if sub is None or not sub.active:
        return False
    sub.active = False
    return True


def describe(sub: Subscriber) -> str:
    place = " ".join(p for p in (sub.township, sub.village) if p)
    return " · ".join(p for p in (AUDIENCES.get(sub.audience, sub.audience), place) if p)


async def mark_unreachable(session: AsyncSession, channel: str, user: str) -> None:
    """The user blocked the bot or unfollowed: later broadcasts skip them (`seen` makes them reachable again)."""
    sub = await find(session, channel, user)
    if sub is not None:
        sub.reachable = False


async def seen(tx: TurnTransaction, channel: str, user: str) -> None:
    """The user wrote or tapped, so they follow us again or unblocked the bot: a subscriber marked unreachable is
    reachable again; and on a platform with a messaging window, their window opens again. Written with the turn (on
    PostgreSQL just after it), the window at most every SEEN_EVERY; a user who subscribed to nothing changes nothing."""
    if channel not in WINDOW_CHANNELS:
        await tx.execute_after(_PG_REACHABLE, _REACHABLE, {"on": channel, "who": user})
        return
    now = utcnow()
    await tx.execute_after(_PG_SEEN, _SEEN, {"on": channel, "who": user, "stale": now - SEEN_EVERY,
                                             "at": now})
