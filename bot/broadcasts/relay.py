"""The village relay (★): no bot can post into the personal WeChat groups where elderly villagers read, so each
village's cadres or grid workers get the warning on their own account with a "已转发到村群" button (Telegram) or
the words to reply (WeChat), and say when they forwarded it. Staff see, per village, whether and when; a cadre who
has not said so after `broadcasts.relay_remind_minutes` is reminded once."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.broadcasts import segments
from bot.config import Settings
from bot.outbox import enqueue
from bot.storage.models import Broadcast, Cadre, Relay
from bot.tips.ledger import as_utc

CHANNELS = ("telegram", "wechat")
ROUTES = {"telegram": "relay-telegram", "wechat": "relay-wechat"}  # sent like warnings, counted apart
DONE = "已转发到村群"
REPLY = re.compile(r"^\s*(?:/relayed|已转发(?:到村群)?)\s*(\d{1,9})\s*$")


def _message(broadcast: Broadcast, channel: str) -> dict[str, Any]:
    head = "【请转发到村里的微信群】"
    if channel == "telegram":
        return {"text": f"{head}\n\n{broadcast.text}\n\n转发后，请点下面的“{DONE}”。",
                "buttons": [[DONE, f"/relayed {broadcast.id}"]]}
    return {"text": f"{head}\n\n{broadcast.text}\n\n转发后，请回复：已转发 {broadcast.id}"}


async def queue(session: AsyncSession, settings: Settings, broadcast: Broadcast, now: datetime,
                postgres: bool) -> dict[str, int]:
    """Hand the warning to every active cadre of its villages (once each); returns {"cadres", "no-cadre"}."""
    codes = dict(segments.villages_of(settings, broadcast))
    cadres = (await session.scalars(select(Cadre).where(Cadre.active.is_(True),
                                                        Cadre.village.in_(sorted(codes))))).all()
    for cadre in cadres:
        if not await enqueue(session, dedup=f"relay:{broadcast.id}:{cadre.id}", channel=ROUTES[cadre.channel],
                             target=cadre.user_id, payload=_message(broadcast, cadre.channel), postgres=postgres,
                             priority=1, broadcast_id=broadcast.id):
            continue
        session.add(Relay(broadcast_id=broadcast.id, cadre_id=cadre.id, village=cadre.village, queued_at=now))
    covered = {c.village for c in cadres}
    return {"cadres": len(cadres), "no-cadre": len(set(codes) - covered)}


async def relayed(session: AsyncSession, channel: str, user: str, broadcast_id: int, now: datetime) -> str:
    """A cadre says they forwarded it: "done" (first time), "again", or "unknown" (not their warning)."""
    relays = (await session.scalars(select(Relay).join(Cadre, Cadre.id == Relay.cadre_id)
                                    .where(Relay.broadcast_id == broadcast_id, Cadre.channel == channel,
                                           Cadre.user_id == user))).all()
    if not relays:
        return "unknown"
    fresh = [r for r in relays if r.relayed_at is None]
    for relay in fresh:
        relay.relayed_at = now
    return "done" if fresh else "again"


async def remind_due(session: AsyncSession, settings: Settings, now: datetime, postgres: bool) -> int:
    """One reminder to each cadre still silent after the set time (only while the warning is live)."""
    late = now - timedelta(minutes=settings.broadcasts.relay_remind_minutes)
    due = (await session.execute(
        select(Relay, Cadre).join(Cadre, Cadre.id == Relay.cadre_id).join(Broadcast, Broadcast.id == Relay.broadcast_id)
        .where(Relay.relayed_at.is_(None), Relay.reminded_at.is_(None), Relay.queued_at <= late,
               Broadcast.state.in_(("sending", "done"))))).all()
    for relay, cadre in due:
        claimed = await session.execute(update(Relay).where(Relay.id == relay.id, Relay.reminded_at.is_(None))
                                        .values(reminded_at=now))
        if claimed.rowcount != 1:
            continue
        how = f"点“{DONE}”" if cadre.channel == "telegram" else f"回复：已转发 {relay.broadcast_id}"
        payload: dict[str, Any] = {"text": f"提醒：第 {relay.broadcast_id} 号预警还没转发到村群。转发后，请{how}。"}
        if cadre.channel == "telegram":
            payload["buttons"] = [[DONE, f"/relayed {relay.broadcast_id}"]]
        await enqueue(session, dedup=f"relay-remind:{relay.broadcast_id}:{cadre.id}", channel=ROUTES[cadre.channel],
                      target=cadre.user_id, payload=payload, postgres=postgres, priority=1,
                      broadcast_id=relay.broadcast_id)
    return len(due)


async def coverage(session: AsyncSession, settings: Settings, broadcast: Broadcast) -> list[dict[str, Any]]:
    """Per village of the warning: its cadres, how many relayed it, and when the first did."""
    relays = (await session.scalars(select(Relay).where(Relay.broadcast_id == broadcast.id))).all()
    rows = []
    for code, name in segments.villages_of(settings, broadcast):
        mine = [r for r in relays if r.village == code]
        times = sorted(as_utc(r.relayed_at) for r in mine if r.relayed_at)
        rows.append({"village": code, "name": name, "cadres": len(mine), "relayed": len(times),
                     "first_relayed_at": times[0].isoformat() if times else None})
    return rows


async def add(session: AsyncSession, settings: Settings, *, name: str, village: str, channel: str,
              user: str) -> Cadre:
    from bot.broadcasts.lifecycle import BroadcastError

    if village not in {v.code for t in settings.region.townships for v in t.villages}:
        raise BroadcastError(f"--village: not a village code of config.yaml: {village}")
    if channel not in CHANNELS:
        raise BroadcastError(f"--channel: one of {', '.join(CHANNELS)}")
    if not name.strip() or not user.strip():
        raise BroadcastError("--name and --id are needed")
    found = await session.scalar(select(Cadre).where(Cadre.channel == channel, Cadre.user_id == user.strip(),
                                                     Cadre.village == village))
    if found is None:
        found = Cadre(name=name.strip(), village=village, channel=channel, user_id=user.strip())
        session.add(found)
    found.name, found.active = name.strip(), True
    await session.flush()
    return found
