"""Who a warning reaches: the subscribers of its segment (audience × townships/villages × channels), each with the
route their copy takes, or the reason it cannot go now."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import BroadcastSettings, RegionSettings, Settings
from bot.storage.models import Broadcast, Subscriber
from bot.tips.ledger import CHINA, as_utc

AUDIENCES = ("elderly", "student", "other", "all")
CHANNELS = ("telegram", "wechat", "web", "local")  # resident channels a warning can reach today
NOT_YET = ("wecom", "relay")  # routes of issue 14 still to come
ROUTES = {"telegram": "warn-telegram", "wechat": "warn-wechat", "notice": "warn-notice"}
REASONS = {"blocked": "屏蔽了机器人或已取消关注", "telegram-off": "本系统没有接入 Telegram"}


@dataclass(frozen=True)
class Recipient:
    subscriber_id: int
    channel: str
    user: str
    audience: str
    route: str | None  # an outbox channel (warn-telegram, warn-wechat, warn-notice), or None with a reason
    reason: str | None = None


def route_of(settings: Settings, channel: str) -> tuple[str | None, str | None]:
    """(route, None), or (None, why this channel cannot take a warning now)."""
    if channel == "telegram":
        return (ROUTES["telegram"], None) if settings.telegram.token else (None, "telegram-off")
    if channel == "wechat" and settings.wechat.enabled and settings.wechat.app_secret:
        return ROUTES["wechat"], None
    return ROUTES["notice"], None  # web, local, and WeChat without API access: shown at their next message


def places(region: RegionSettings, townships: list[str], villages: list[str]) -> tuple[set[str], set[tuple[str, str]]]:
    """Subscribers keep the names they picked: the township names and (township, village) names of these codes."""
    towns = {t.name for t in region.townships if t.code in townships}
    spots = {(t.name, v.name) for t in region.townships for v in t.villages if v.code in villages}
    return towns, spots


async def recipients(session: AsyncSession, settings: Settings, broadcast: Broadcast) -> list[Recipient]:
    segment = broadcast.segment or {}
    channels = [c for c in segment.get("channels") or CHANNELS if c in CHANNELS]
    query = select(Subscriber).where(Subscriber.active.is_(True), Subscriber.channel.in_(channels))
    if broadcast.audience != "all":
        query = query.where(Subscriber.audience == broadcast.audience)
    towns, spots = places(settings.region, segment.get("townships") or [], segment.get("villages") or [])
    whole_county = not segment.get("townships") and not segment.get("villages")
    found: list[Recipient] = []
    for sub in (await session.scalars(query.order_by(Subscriber.id))).all():
        if not whole_county and sub.township not in towns and (sub.township, sub.village) not in spots:
            continue
        route, reason = route_of(settings, sub.channel)
        if not sub.reachable:
            route, reason = None, "blocked"
        found.append(Recipient(sub.id, sub.channel, sub.user_id, sub.audience, route, reason))
    return found


def summary(found: list[Recipient]) -> dict[str, Any]:
    """How many on each channel and route, and how many cannot be reached now and why."""
    reachable = [r for r in found if r.route]
    return {"total": len(found), "reachable": len(reachable),
            "channels": dict(Counter(r.channel for r in reachable)),
            "routes": dict(Counter(r.route for r in reachable)),
            "skipped": dict(Counter(r.reason for r in found if r.reason))}


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def is_quiet(settings: BroadcastSettings, now: datetime) -> bool:
    """Whether `now` falls in the quiet hours (China time; the span may cross midnight)."""
    local = as_utc(now).astimezone(CHINA).time()
    start, end = _clock(settings.quiet_start), _clock(settings.quiet_end)
    return start <= local < end if start < end else local >= start or local < end


def held_at_night(settings: BroadcastSettings, broadcast: Broadcast, recipient: Recipient) -> bool:
    return not broadcast.urgent and recipient.audience in settings.quiet_audiences
