"""WeChat mass sends (群发): a broadcast mode of its own, one message to the followers with a tag
(`fangfei broadcast create … --mass-tag TAG`), within the account's scarce quota.

- Quota: a service account (服务号) may mass-send so that each user gets at most 4 a month, a subscription
  account (订阅号) once a day (`wechat.account_type`). Any user may be in any tag, so every mass send counts against
  the one quota of its period (the calendar month or the China day), kept in `wechat_mass_quota`; a slot is taken
  by an atomic conditional UPDATE, so two processes cannot both take the last one. The preview shows it; drafting,
  approving and sending are refused with a plain line when it is used up.
- Sent once: the intent is written (and committed) before the API call, the outcome after it. A send found with
  its intent but no outcome — its process was killed, or no answer came — is never made again: it is settled as
  "outcome unknown" for the operator to check in the account's 群发记录, and `retry-failed` leaves it alone.
  Only a send WeChat surely did not take (no connection, a server error, "busy", the API limit 45009) is retried
  by the outbox, with its backoff; a refusal fails it.
- Stopping them: a mass message ends, like every warning, with "回复“退订”". A follower who replies so is taken out
  of every tag a mass warning went to (`opt_out`, through the outbox: route `wechat-untag`), so later mass sends to
  those tags miss them, whether or not they had subscribed here.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.channels.wechat_api import WeChatApi, WeChatApiError
from bot.config import Settings
from bot.outbox import FAILED, PENDING, TABLE, Outcome, Sender, enqueue
from bot.storage.database import Database
from bot.storage.models import Broadcast, WeChatMassQuota, WeChatMassSend, utcnow
from bot.tips.ledger import CHINA, as_utc

log = logging.getLogger(__name__)
ROUTE = "warn-wechat-mass"
QUOTAS = {"service": ("month", 4), "subscription": ("day", 1)}  # WeChat's rules per account type
RULES = {
    "service": "a service account's users get at most 4 mass sends a month",
    "subscription": "a subscription account mass-sends once a day",
}
COUNTED = ("sending", "sent", "unknown")  # states that used a slot of the quota
RETRY = {-1, 45009}  # system busy, API call limit reached: nothing was sent; the outbox tries again later
NO_QUOTA = {45028}  # WeChat: no mass-send quota left for this period
UNTAG = "wechat-untag"  # outbox route: a follower who replied 退订 leaves the tags mass warnings went to
GONE_TAG = {45159}  # WeChat: no such tag (deleted since): nothing to leave
UNKNOWN = (
    "outcome unknown: the mass send may have gone out; not sent again (check 群发记录 in the account's admin pages)"
)


def is_mass(broadcast: Broadcast) -> bool:
    return (broadcast.segment or {}).get("mass_tag") is not None


def tag_of(broadcast: Broadcast) -> int:
    return int((broadcast.segment or {})["mass_tag"])


def period(settings: Settings, at: datetime) -> str:
    """The quota's period holding `at` (China time): 2026-05 for a service account, 2026-05-14 otherwise."""
    local = as_utc(at).astimezone(CHINA)
    unit, _ = QUOTAS[settings.wechat.account_type]
    return local.strftime("%Y-%m" if unit == "month" else "%Y-%m-%d")


async def quota(session: AsyncSession, settings: Settings, at: datetime | None = None) -> dict[str, Any]:
    """The account's mass-send quota in the period of `at` (default now): type, period, limit, used, left."""
    kind = settings.wechat.account_type
    unit, limit = QUOTAS[kind]
    when = period(settings, at or utcnow())
    used = await session.scalar(select(WeChatMassQuota.used).where(WeChatMassQuota.period == when)) or 0
    return {
        "account_type": kind,
        "per": unit,
        "period": when,
        "limit": limit,
        "used": used,
        "left": max(0, limit - used),
    }


def refusal(shown: dict[str, Any]) -> str | None:
    """The operator's line when the quota is used up, else None."""
    if shown["left"] > 0:
        return None
    return (
        f"WeChat mass-send quota used up: {shown['used']} of {shown['limit']} in {shown['period']} "
        f"({RULES[shown['account_type']]}); send it in the next {shown['per']}, or to subscribers without "
        "--mass-tag"
    )


async def preview(
    session: AsyncSession, settings: Settings, broadcast: Broadcast, now: datetime | None = None
) -> dict[str, Any]:
    """One message to a tag (WeChat counts its followers), and the quota of the period it would go in."""
    at = broadcast.send_at if broadcast.send_at and as_utc(broadcast.send_at) > (now or utcnow()) else now
    return {
        "total": 0,
        "reachable": 0,
        "channels": {},
        "routes": {ROUTE: 1},
        "skipped": {},
        "mass": {"tag": tag_of(broadcast), **await quota(session, settings, at)},
    }


async def progress(session: AsyncSession, broadcast: Broadcast) -> dict[str, Any]:
    """The mass send's state (waiting, sending, sent, failed, unknown, retry), msg_id and error."""
    row = await session.get(WeChatMassSend, broadcast.id, populate_existing=True)
    if row is None:
        return {"tag": tag_of(broadcast), "state": "waiting", "msg_id": None, "error": None, "period": None}
    return {"tag": row.tag_id, "state": row.state, "msg_id": row.msg_id, "error": row.error, "period": row.period}


async def settle_orphans(session: AsyncSession, now: datetime) -> int:
    """The leader's round: a mass send left with its intent and no outcome while no worker holds its outbox row
    (the sending process died after the call, or before recording the answer) is settled as outcome unknown —
    failed, and left alone by retry-failed — never sent again. Returns how many."""
    held = (
        select(TABLE.c.id)
        .where(
            TABLE.c.broadcast_id == WeChatMassSend.broadcast_id,
            TABLE.c.channel == ROUTE,
            TABLE.c.status == PENDING,
            TABLE.c.lease_until >= now,
        )
        .exists()
    )
    orphans = (
        await session.scalars(select(WeChatMassSend).where(WeChatMassSend.state == "sending", ~held).with_for_update())
    ).all()
    for row in orphans:
        row.state, row.error, row.settled_at = "unknown", "its process stopped during the send", now
        await session.execute(
            update(TABLE)
            .where(
                TABLE.c.broadcast_id == row.broadcast_id,
                TABLE.c.channel == ROUTE,
                TABLE.c.status == PENDING,
                or_(TABLE.c.lease_until.is_(None), TABLE.c.lease_until < now),
            )
            .values(status=FAILED, unknowns=TABLE.c.unknowns + 1, lease_until=None, last_error=UNKNOWN[:200])
        )
        log.error(
            "mass send of broadcast %d: outcome unknown (its process stopped during the send); not sent again",
            row.broadcast_id,
        )
    return len(orphans)


async def _take_slot(session: AsyncSession, settings: Settings, when: str) -> bool:
    """One send of the period's quota, atomically (False: used up)."""
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    await session.execute(insert(WeChatMassQuota).values(period=when, used=0).on_conflict_do_nothing())
    _, limit = QUOTAS[settings.wechat.account_type]
    taken = await session.execute(
        update(WeChatMassQuota)
        .where(WeChatMassQuota.period == when, WeChatMassQuota.used < limit)
        .values(used=WeChatMassQuota.used + 1)
    )
    return taken.rowcount == 1


async def _begin(
    session: AsyncSession, settings: Settings, broadcast_id: int, tag: int, now: datetime
) -> Outcome | None:
    """Write the intent (None: go ahead and call WeChat), or the outcome that stands instead."""
    row = await session.get(WeChatMassSend, broadcast_id, with_for_update=True)
    if row is not None and row.state == "sent":
        return Outcome.sent()
    if row is not None and row.state in ("sending", "unknown"):  # an earlier try's outcome never came back
        row.state, row.settled_at = "unknown", row.settled_at or now
        await _may_have_arrived(session, broadcast_id)
        return Outcome.failed(UNKNOWN)
    when = period(settings, now)
    if not await _take_slot(session, settings, when):
        message = refusal(await quota(session, settings, now)) or "mass-send quota used up"
        if row is None:
            session.add(
                WeChatMassSend(
                    broadcast_id=broadcast_id,
                    tag_id=tag,
                    period=when,
                    state="failed",
                    error=message[:200],
                    attempts=0,
                    started_at=now,
                    settled_at=now,
                )
            )
        else:
            row.state, row.error, row.settled_at = "failed", message[:200], now
        return Outcome.failed(message)
    if row is None:
        row = WeChatMassSend(broadcast_id=broadcast_id, tag_id=tag, attempts=0)
        session.add(row)
    row.period, row.state, row.error, row.msg_id = when, "sending", None, None
    row.attempts, row.started_at, row.settled_at = (row.attempts or 0) + 1, now, None
    return None


async def _may_have_arrived(session: AsyncSession, broadcast_id: int) -> None:
    """Count an unknown outcome on the outbox row, so `retry-failed` leaves it alone."""
    await session.execute(
        update(TABLE)
        .where(TABLE.c.broadcast_id == broadcast_id, TABLE.c.channel == ROUTE)
        .values(unknowns=TABLE.c.unknowns + 1)
    )


async def _settle(
    db: Database,
    settings: Settings,
    broadcast_id: int,
    state: str,
    *,
    error: str | None = None,
    msg_id: str | None = None,
    release: bool = False,
    exhausted: bool = False,
) -> None:
    async with db.transaction() as session:
        row = await session.get(WeChatMassSend, broadcast_id, with_for_update=True)
        if row is None:
            return
        row.state, row.error, row.msg_id, row.settled_at = state, (error or None) and error[:200], msg_id, utcnow()
        if release or exhausted:
            _, limit = QUOTAS[settings.wechat.account_type]
            used = WeChatMassQuota.used - 1 if release else limit  # WeChat says none is left: believe it
            await session.execute(update(WeChatMassQuota).where(WeChatMassQuota.period == row.period).values(used=used))
        if state == "unknown":
            await _may_have_arrived(session, broadcast_id)


async def opt_out(session: AsyncSession, channel: str, user: str, *, postgres: bool) -> bool:
    """A WeChat follower asked to stop warnings: queue their removal from every tag a mass warning went to (at most
    once a day each); False when there is none (or the user is not on WeChat)."""
    if channel != "wechat":
        return False
    segments = await session.scalars(select(Broadcast.segment).where(Broadcast.segment.is_not(None)))
    tags = sorted({int(s["mass_tag"]) for s in segments if isinstance(s, dict) and s.get("mass_tag") is not None})
    day = utcnow().astimezone(CHINA).date().isoformat()
    for tag in tags:
        await enqueue(session, dedup=f"{UNTAG}:{tag}:{day}:{user}", channel=UNTAG, target=user,
                      payload={"tag": tag}, postgres=postgres)
    return bool(tags)


def untagger(api: WeChatApi) -> Sender:
    """payload {"tag"}: target is the follower's openid."""

    async def send(target: str, payload: dict[str, Any]) -> Outcome:
        try:
            result = await api.untag(target, int(payload["tag"]))
        except WeChatApiError as exc:
            return Outcome.retry(str(exc))  # repeating it is harmless
        if result.ok or result.errcode in GONE_TAG:
            return Outcome.sent()
        error = f"errcode {result.errcode}"
        return Outcome.retry(error) if result.errcode in RETRY else Outcome.failed(error)

    return send


def sender(api: WeChatApi, db: Database, settings: Settings) -> Sender:
    """payload {"text", "broadcast"}: target is the tag id."""

    async def send(target: str, payload: dict[str, Any]) -> Outcome:
        broadcast_id, tag = int(payload["broadcast"]), int(target)
        async with db.transaction() as session:
            instead = await _begin(session, settings, broadcast_id, tag, utcnow())
        if instead is not None:
            return instead
        log.info("mass send of broadcast %d: intent recorded; calling WeChat", broadcast_id)
        try:
            result = await api.send_mass(tag, payload["text"])
        except WeChatApiError as exc:
            if exc.unsure:
                await _settle(db, settings, broadcast_id, "unknown", error=str(exc))
                log.error("mass send of broadcast %d: outcome unknown (%s); not sent again", broadcast_id, exc)
                return Outcome.failed(UNKNOWN)
            await _settle(db, settings, broadcast_id, "retry", error=str(exc), release=True)
            return Outcome.retry(str(exc))
        except (asyncio.CancelledError, TimeoutError):  # the dispatcher gave up waiting: the call may have gone out
            await asyncio.shield(_settle(db, settings, broadcast_id, "unknown", error="no answer in time"))
            raise
        if result.ok:
            await _settle(db, settings, broadcast_id, "sent", msg_id=result.msg_id)
            log.info("mass send of broadcast %d: sent (msg_id %s)", broadcast_id, result.msg_id)
            return Outcome.sent()
        error = f"errcode {result.errcode}"
        if result.errcode in RETRY:
            await _settle(db, settings, broadcast_id, "retry", error=error, release=True)
            return Outcome.retry(error)
        if result.errcode in NO_QUOTA:
            await _settle(
                db,
                settings,
                broadcast_id,
                "failed",
                error=f"{error}: WeChat has no mass-send quota left",
                exhausted=True,
            )
            return Outcome.failed(f"{error}: WeChat has no mass-send quota left in this period")
        await _settle(db, settings, broadcast_id, "failed", error=error, release=True)
        return Outcome.failed(error)

    return send
