"""Who a warning reaches: the subscribers of its segment (audience × townships/villages × channels), the route
each copy takes, or the reason it cannot go now; quiet hours.

Routes: warn-telegram; WeChat within its rules — warn-wechat (a customer-service message, inside the 48 hours
after the subscriber last wrote or tapped, or when we do not know when that was), warn-wechat-tpl (a template
message beyond them, when `wechat.template_id` is set), else warn-notice (kept for their next message, counted not
reachable now); warn-notice for web and local chat; warn-wecom; and a mass send's one warn-wechat-mass
(bot/broadcasts/mass.py)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, case, cast, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.broadcasts import mass
from bot.config import BroadcastSettings, RegionSettings, Settings, Township
from bot.staff import accounts
from bot.storage.models import Broadcast, Subscriber, utcnow
from bot.subscribers import SEEN_EVERY
from bot.tips.ledger import CHINA, as_utc

AUDIENCES = ("elderly", "student", "other", "all")
CHANNELS = ("telegram", "wechat", "web", "local")  # residents' channels
STAFF_ROUTES = ("wecom", "relay")  # township staff groups' WeCom robots; village cadres (bot/broadcasts/relay.py)
ROUTES = {"telegram": "warn-telegram", "wechat": "warn-wechat", "wechat-template": "warn-wechat-tpl",
          "wechat-mass": mass.ROUTE, "notice": "warn-notice", "wecom": "warn-wecom"}
REASONS = {"blocked": "屏蔽了机器人或已取消关注", "telegram-off": "本系统没有接入 Telegram",
           "no-cadre": "村里没有登记转发的村干部（村数）", "no-robot": "乡镇工作群没有配置企业微信机器人（乡镇数）",
           "wechat-window": "48 小时内没有来过消息（没有配置模板消息）：下次来消息时看到"}
# WeChat allows customer-service messages for 48 hours after the user wrote; `last_seen` may be SEEN_EVERY early
WECHAT_WINDOW = timedelta(hours=48)
WINDOW_CLOSED = "outside WeChat's 48-hour window: kept as a notice"


def window_cutoff(now: datetime) -> datetime:
    """A WeChat subscriber last seen before this is outside the customer-service window (counted a little early:
    `last_seen` is written at most every SEEN_EVERY)."""
    return now - WECHAT_WINDOW + SEEN_EVERY


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


def route_of(settings: Settings, channel: str, window: str = "open") -> tuple[str | None, str | None]:
    """(route, None), or (None, why this channel cannot take a warning now). `window`: a WeChat subscriber's
    48 hours — open, closed, or unknown (never seen since we kept it: customer service is tried first)."""
    if channel == "telegram":
        return (ROUTES["telegram"], None) if settings.telegram.token else (None, "telegram-off")
    if channel == "wechat" and settings.wechat.can_send:
        if window != "closed":
            return ROUTES["wechat"], None
        if settings.wechat.template_id:
            return ROUTES["wechat-template"], None
        return ROUTES["notice"], "wechat-window"  # a notice for their next message, counted not reachable now
    return ROUTES["notice"], None  # web, local, and WeChat without API access: shown at their next message


def _window(now: datetime) -> ColumnElement[str]:
    return case((Subscriber.last_seen.is_(None), literal("unknown")),
                (Subscriber.last_seen >= window_cutoff(now), literal("open")), else_=literal("closed"))


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


async def preview(session: AsyncSession, settings: Settings, broadcast: Broadcast,
                  now: datetime | None = None) -> dict[str, Any]:
    """How many on each channel and route, and how many cannot be reached now and why: `skipped` get no copy,
    `noticed` a notice for their next message (counted not reachable now). `wechat`: how many go by
    customer-service message (`unknown_window` of them never seen since we kept the time: tried first, then as
    outside the window), by template, and how many cannot be reached. A mass send's preview is its quota."""
    if mass.is_mass(broadcast):
        return await mass.preview(session, settings, broadcast, now)
    window = _window(now or utcnow())
    rows = (await session.execute(select(Subscriber.channel, Subscriber.reachable, window, func.count())
                                  .where(*members(settings, broadcast))
                                  .group_by(Subscriber.channel, Subscriber.reachable, window))).all()
    channels: Counter[str] = Counter()
    routes: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    noticed: Counter[str] = Counter()
    wechat: Counter[str] = Counter()
    for channel, reachable, seen, count in rows:
        route, reason = route_of(settings, channel, seen)
        if not reachable:
            route, reason = None, "blocked"
        if route and reason:
            noticed[reason] += count
        elif route:
            channels[channel] += count
            routes[route] += count
        else:
            skipped[reason or "unknown"] += count
        if channel == "wechat" and settings.wechat.can_send:
            kind = {ROUTES["wechat"]: "customer_service", ROUTES["wechat-template"]: "template"}.get(route or "")
            wechat[kind if kind and not reason else "unreachable"] += count
            if kind == "customer_service" and seen == "unknown":
                wechat["unknown_window"] += count
    if takes(broadcast, "wecom"):
        robots = township_robots(settings, broadcast)
        if robots["with"]:
            routes[ROUTES["wecom"]] += len(robots["with"])
        if robots["without"]:
            skipped["no-robot"] += len(robots["without"])
    total = sum(channels.values()) + sum(skipped.values()) + sum(noticed.values())
    shown: dict[str, Any] = {"total": total, "reachable": sum(channels.values()), "channels": dict(channels),
                             "routes": dict(routes), "skipped": dict(skipped)}
    if noticed:
        shown["noticed"] = dict(noticed)
    if takes(broadcast, "wechat") and settings.wechat.can_send:
        shown["wechat"] = {k: wechat.get(k, 0) for k in ("customer_service", "template", "unreachable",
                                                         "unknown_window")}
    return shown


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
    beyond, why = route_of(settings, "wechat", "closed")  # outside the 48 hours: a template, or a notice
    closed = and_(Subscriber.channel == "wechat", Subscriber.last_seen < window_cutoff(now))
    route = case((Subscriber.channel == "telegram", literal(telegram)), (closed, literal(beyond)),
                 (Subscriber.channel == "wechat", literal(wechat)), else_=literal(ROUTES["notice"]))
    quiet = (Subscriber.audience.in_(settings.broadcasts.quiet_audiences) if not broadcast.urgent
             else literal(False))
    build = func.json_build_object if postgres else func.json_object
    where = [*members(settings, broadcast), Subscriber.reachable.is_(True)]
    if telegram is None:
        where.append(Subscriber.channel != "telegram")
    # a notice for someone WeChat will not let us message now says so in its outcome (counted not reachable)
    held = case((closed, literal(WINDOW_CLOSED if why else "")), else_=literal(""))
    payload = build("text", literal(text), "channel", Subscriber.channel, "area", literal(area(settings, broadcast)),
                    "day", literal(china_day(now)), "held", held)
    return select(literal(f"warn:{broadcast.id}:") + cast(Subscriber.id, String), route, Subscriber.user_id,
                  payload, literal("pending"), literal(0), literal(0), literal(now), literal(now), literal(priority),
                  literal(broadcast.id), quiet).where(*where)


def china_day(now: datetime) -> str:
    local = as_utc(now).astimezone(CHINA)
    return f"{local.year}年{local.month}月{local.day}日"


def area(settings: Settings, broadcast: Broadcast) -> str:
    """Where the warning is for, in words: its townships (and villages), or the county."""
    segment = broadcast.segment or {}
    if not segment.get("townships") and not segment.get("villages"):
        return settings.region.region
    towns = [t.name for t in townships_of(settings, broadcast) if t.code in (segment.get("townships") or [])]
    villages = [name for code, name in villages_of(settings, broadcast) if code in (segment.get("villages") or [])]
    return "、".join(towns + villages)


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def is_quiet(settings: BroadcastSettings, now: datetime) -> bool:
    """Whether `now` falls in the quiet hours (China time; the span may cross midnight)."""
    local = as_utc(now).astimezone(CHINA).time()
    start, end = _clock(settings.quiet_start), _clock(settings.quiet_end)
    return start <= local < end if start < end else local >= start or local < end


