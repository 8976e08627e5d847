"""Followers of an Official Account: whether they still follow and where they came from."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import WeChatUser


async def follow(session: AsyncSession, openid: str, source: str | None) -> None:
    user = await session.get(WeChatUser, openid)
    if user is None:
        user = WeChatUser(openid=openid)
        session.add(user)
    user.following = True
    if source:
        user.source = source[:64]


async def unfollow(session: AsyncSession, openid: str) -> None:
    user = await session.get(WeChatUser, openid)
    if user is not None:
        user.following = False
