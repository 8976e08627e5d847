"""Subscriptions to warning broadcasts, with the profile that puts a resident in audience segments."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Subscriber

AUDIENCES = {"elderly": "老年人", "student": "学生", "other": "其他"}


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
    """The user blocked the bot: later broadcasts skip them (a new message from them makes them reachable again)."""
    sub = await find(session, channel, user)
    if sub is not None:
        sub.reachable = False


async def mark_reachable(session: AsyncSession, channel: str, user: str) -> None:
    sub = await find(session, channel, user)
    if sub is not None and not sub.reachable:
        sub.reachable = True
