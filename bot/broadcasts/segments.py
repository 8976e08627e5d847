"""Who a warning reaches: the subscribers of its segment (audience × townships/villages × channels), the route
each copy takes (warn-telegram, warn-wechat, warn-notice), or the reason it cannot go now; quiet hours."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, time
from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, case, cast, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import BroadcastSettings, RegionSettings, Settings, Township
from bot.staff import accounts
from bot.storage.models import Broadcast, Subscriber
from bot.tips.ledger import CHINA, as_utc

AUDIENCES = ("elderly", "student", "other", "all")
CHANNELS = ("telegram", "wechat", "web", "local")  # residents' channels
STAFF_ROUTES = ("wecom", "relay")  # township staff groups' WeCom robots; village cadres (bot/broadcasts/relay.py)
ROUTES = {"telegram": "warn-telegram", "wechat": "warn-wechat", "notice": "warn-notice", "wecom": "warn-wecom"}
REASONS = {"blocked": "屏蔽了机器人或已取消关注", "telegram-off": "本系统没有接入 Telegram",
           "no-cadre": "村里没有登记转发的村干部（村数）", "no-robot": "乡镇工作群没有配置企业微信机器人（乡镇数）"}


def takes(broadcast: Broadcast, channel: str) -> bool:
    """Whether the warning goes out on this channel or staff route."""
    return channel in (broadcast.segment or {}).get("channels", [])


def townships_of(settings: Settings, broadcast: Broadcast) -> list[Township]:
    """The townships the warning is for: those listed, those of the villages listed, or all (the whole county)."""
    segment = broadcast.segment or {}
    towns, villages = segment.get("townships") or [], segment.get("villages") or []
    return [t for t in settings.region.townships
            if (not towns and not villages) or t.code in towns or any(v.code in villages for v in t.villages)]


def villages_of(settings: Settings, broadcast: Broadcast) -> list[tuple[str, str]]:
    """(code, township + village name) of the villages the warning is for: those listed, all those of the townships
    listed, or all."""
    villages = (broadcast.segment or {}).get("villages") or []
    listed = set((broadcast.segment or {}).get("townships") or [])
    return [(v.code, f"{t.name}{v.name}") for t in townships_of(settings, broadcast) for v in t.villages
            if not villages or t.code in listed or v.code in villages]


def township_codes(settings: Settings, broadcast: Broadcast) -> list[str]:
    """The codes of the townships a warning is for; none for a county-wide one."""
    segment = broadcast.segment or {}
    if not segment.get("townships") and not segment.get("villages"):
        return []
    return [t.code for t in townships_of(settings, broadcast)]


def visible_to(settings: Settings, broadcast: Broadcast, scope: list[str] | None) -> bool:
    """Whether staff limited to the townships `scope` see the warning (bot/staff/accounts.py `sees`)."""
    return accounts.sees(scope, township_codes(settings, broadcast))


def within(settings: Settings, broadcast: Broadcast, scope: list[str] | None) -> bool:
    """Whether staff limited to `scope` may act on the warning (bot/staff/accounts.py `owns`)."""
    return accounts.owns(scope, township_codes(settings, broadcast))


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


def members(settings: Settings, broadcast: Broadcast) -> list[ColumnElement[bool]]:
    """The conditions that pick the broadcast's subscribers (reachable or not)."""
    segment = broadcast.segment or {}
    channels = [c for c in segment.get("channels") or CHANNELS if c in CHANNELS]
    where: list[ColumnElement[bool]] = [Subscriber.active.is_(True), Subscriber.channel.in_(channels)]
    if broadcast.audience != "all":
        where.append(Subscriber.audience == broadcast.audience)
    if segment.get("townships") or segment.get("villages"):
        towns, spots = places(settings.region, segment.get("townships") or [], segment.get("villages") or [])
        where.append(or_(Subscriber.township.in_(sorted(towns)),
                         *(and_(Subscriber.township == t, Subscriber.village == v) for t, v in sorted(spots))))
    return where


async def preview(session: AsyncSession, settings: Settings, broadcast: Broadcast) -> dict[str, Any]:
    """How many on each channel and route, and how many cannot be reached now and why."""
    rows = (await session.execute(select(Subscriber.channel, Subscriber.reachable, func.count())
                                  .where(*members(settings, broadcast))
                                  .group_by(Subscriber.channel, Subscriber.reachable))).all()
    channels: Counter[str] = Counter()
    routes: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for channel, reachable, count in rows:
        route, reason = route_of(settings, channel)
        if not reachable:
            route, reason = None, "blocked"
        if route:
            channels[channel] += count
            routes[route] += count
        else:
            skipped[reason or "unknown"] += count
    if takes(broadcast, "wecom"):
        robots = township_robots(settings, broadcast)
        if robots["with"]:
            routes[ROUTES["wecom"]] += len(robots["with"])
        if robots["without"]:
            skipped["no-robot"] += len(robots["without"])
    total = sum(channels.values()) + sum(skipped.values())
    return {"total": total, "reachable": sum(channels.values()), "channels": dict(channels), "routes": dict(routes),
            "skipped": dict(skipped)}


def township_robots(settings: Settings, broadcast: Broadcast) -> dict[str, list[str]]:
    """The codes of the warning's townships with and without a staff group robot."""
    robots = settings.broadcasts.township_robots
    codes = [t.code for t in townships_of(settings, broadcast)]
    return {"with": [c for c in codes if robots.get(c)], "without": [c for c in codes if not robots.get(c)]}


def deliveries(settings: Settings, broadcast: Broadcast, text: str, *, priority: int, now: datetime,
               postgres: bool) -> Select[Any]:
    """One outbox row per reachable subscriber, as a SELECT to insert from (the rows never pass through Python):
    dedup, channel (the route), target, payload, status, attempts, unknowns, next_attempt_at, created_at, priority,
    broadcast_id, quiet."""
    telegram, _ = route_of(settings, "telegram")
    wechat, _ = route_of(settings, "wechat")
    route = case((Subscriber.channel == "telegram", literal(telegram)),
                 (Subscriber.channel == "wechat", literal(wechat)), else_=literal(ROUTES["notice"]))
    quiet = (Subscriber.audience.in_(settings.broadcasts.quiet_audiences) if not broadcast.urgent
             else literal(False))
    build = func.json_build_object if postgres else func.json_object
    where = [*members(settings, broadcast), Subscriber.reachable.is_(True)]
    if telegram is None:
        where.append(Subscriber.channel != "telegram")
    return select(literal(f"warn:{broadcast.id}:") + cast(Subscriber.id, String), route, Subscriber.user_id,
                  build("text", literal(text), "channel", Subscriber.channel), literal("pending"), literal(0),
                  literal(0), literal(now), literal(now), literal(priority), literal(broadcast.id), quiet
                  ).where(*where)


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def is_quiet(settings: BroadcastSettings, now: datetime) -> bool:
    """Whether `now` falls in the quiet hours (China time; the span may cross midnight)."""
    local = as_utc(now).astimezone(CHINA).time()
    start, end = _clock(settings.quiet_start), _clock(settings.quiet_end)
    return start <= local < end if start < end else local >= start or local < end


