"""A warning's life: drafted, approved by a second person, sent (now or at its time), paused, resumed, cancelled,
its failed copies retried; every step in the audit log. Sending writes one outbox row per recipient (its dedup key
`warn:<broadcast>:<subscriber>` makes a second copy impossible); the outbox's dispatcher delivers them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.broadcasts import mass, relay, segments
from bot.config import Settings
from bot.outbox import CANCELLED, FAILED, PENDING, SENT, TABLE, UNREACHABLE, enqueue
from bot.staff import accounts
from bot.storage.models import AuditEntry, Broadcast, utcnow
from bot.tips.ledger import as_utc
from knowledge import warnings
from knowledge.text import strip_control

UNSUBSCRIBE = "回复“退订”，不再接收提醒。"
TEXT_MAX = 500
PRIORITY = -1  # behind staff alerts and reporters' notices
LIVE = ("approved", "sending", "paused")


class BroadcastError(Exception):
    """Something staff asked that cannot be done, in one line for them."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _audit(session: AsyncSession, actor: str, action: str, broadcast: Broadcast) -> None:
    session.add(AuditEntry(actor=actor[:64], action=action, subject=f"broadcast:{broadcast.id}"))


async def named(session: AsyncSession, broadcast_id: int) -> Broadcast:
    # populate_existing: a broadcast this session read before is read again under the lock (else the state checked
    # would be the one read before another request's change)
    found = await session.get(Broadcast, broadcast_id, with_for_update=True, populate_existing=True)
    if found is None:
        raise BroadcastError(f"no broadcast {broadcast_id}")
    return found


def compose(settings: Settings, *, text: str | None, template: str | None, township: str | None,
            company: str | None) -> str:
    """The warning's text: given, or a template filled in (`knowledge/warnings/`)."""
    if bool(text) == bool(template):
        raise BroadcastError("give either a text or a template")
    if text is not None:
        text = strip_control(text).strip()  # (PostgreSQL refuses NUL; no terminal escapes go out to residents)
        if not text:
            raise BroadcastError("the text is empty")
        if len(text) > TEXT_MAX:
            raise BroadcastError(f"the text has {len(text)} characters; at most {TEXT_MAX}")
        return text
    region = settings.region
    templates, _ = warnings.load(region_keys=set(region.placeholders()))
    found = templates.get(template or "")
    if found is None:
        raise BroadcastError(f"no template {template!r} (see knowledge/warnings/)")
    name = next((t.name for t in region.townships if t.code == township), None)
    try:
        return warnings.render(found, region.placeholders(), {"township": name, "company": company})
    except warnings.MissingField as exc:
        flags = ", ".join(f"--{n}" for n in exc.names)
        raise BroadcastError(f"template {found.id} needs {flags}") from exc


async def create(session: AsyncSession, settings: Settings, *, text: str, template: str | None, audience: str,
                 townships: list[str], villages: list[str], channels: list[str], send_at: datetime | None,
                 urgent: bool, drafted_by: str, mass_tag: int | None = None) -> Broadcast:
    """A draft. With `mass_tag`, a WeChat mass send (群发) to the followers with that tag instead of the
    subscribers of a segment (bot/broadcasts/mass.py)."""
    if audience not in segments.AUDIENCES:
        raise BroadcastError(f"audience: one of {', '.join(segments.AUDIENCES)}")
    region = settings.region
    unknown = [c for c in townships if c not in {t.code for t in region.townships}]
    unknown += [c for c in villages if c not in {v.code for t in region.townships for v in t.villages}]
    if unknown:
        raise BroadcastError(f"not a township or village code of config.yaml: {', '.join(unknown)}")
    known = (*segments.CHANNELS, *segments.STAFF_ROUTES)
    wrong = [c for c in channels if c not in known]
    if wrong or not channels:
        raise BroadcastError(f"channels: some of {', '.join(known)}")
    if not drafted_by.strip():
        raise BroadcastError("--as: the drafter's name")
    segment: dict[str, Any] = {"townships": townships, "villages": villages, "channels": channels}
    if mass_tag is not None:
        await _check_mass(session, settings, mass_tag, segment, send_at)
        segment["mass_tag"] = mass_tag
    made = Broadcast(text=text, template=template, audience=audience, urgent=urgent, send_at=send_at,
                     segment=segment, drafted_by=drafted_by.strip(), skipped={}, state="draft")
    session.add(made)
    await session.flush()
    _audit(session, made.drafted_by, "broadcast-draft", made)
    return made


async def _check_mass(session: AsyncSession, settings: Settings, tag: int, segment: dict[str, Any],
                      send_at: datetime | None) -> None:
    if segment["channels"] != ["wechat"]:
        raise BroadcastError("--mass-tag: a mass send goes out on WeChat only: give --channels wechat")
    if segment["townships"] or segment["villages"]:
        raise BroadcastError("--mass-tag: a mass send reaches the tag's followers: --township and --village do not "
                             "apply")
    if not 0 <= tag < 2**31:
        raise BroadcastError("--mass-tag: a WeChat tag id (a number, 公众号 → 用户管理 → 标签)")
    if not settings.wechat.can_send:
        raise BroadcastError("--mass-tag: WeChat is not set up for sending (FANGFEI_WECHAT__TOKEN and "
                             "FANGFEI_WECHAT__APP_SECRET, wechat.app_id)")
    await check_quota(session, settings, send_at)


async def check_quota(session: AsyncSession, settings: Settings, at: datetime | None) -> None:
    """Refuse a mass send for a period whose quota is used up, in one line for the operator."""
    refused = mass.refusal(await mass.quota(session, settings, at))
    if refused:
        raise BroadcastError(refused)


async def edit(session: AsyncSession, broadcast: Broadcast, actor: str, *, text: str | None = None,
               template: str | None = None, urgent: bool | None = None, send_at: datetime | None = None) -> None:
    """Change a draft (only a draft: what was approved is what goes out); the edit is in the audit log."""
    if broadcast.state != "draft":
        raise BroadcastError(f"broadcast {broadcast.id} is {broadcast.state}: only a draft can be edited")
    if text is not None:
        broadcast.text, broadcast.template = text, template
    if urgent is not None:
        broadcast.urgent = urgent
    if send_at is not None:
        broadcast.send_at = send_at
    _audit(session, actor, "broadcast-edit", broadcast)


async def approve(session: AsyncSession, settings: Settings, broadcast: Broadcast, approver: str,
                  now: datetime | None = None) -> Broadcast:
    """The second person's yes: sent at once, or at its time by `serve`."""
    rules = settings.broadcasts
    approver = approver.strip()
    if broadcast.state != "draft":
        raise BroadcastError(f"broadcast {broadcast.id} is {broadcast.state}, not a draft")
    if rules.two_person and approver == broadcast.drafted_by:
        raise BroadcastError("the drafter cannot approve their own warning: another approver must")
    if not await accounts.may(session, settings, approver, "approve"):
        raise BroadcastError(f"{approver!r} is not an approver (an account with role approver, or config.yaml "
                             "broadcasts.approvers)")
    now = now or utcnow()
    if mass.is_mass(broadcast):
        await check_quota(session, settings, broadcast.send_at if broadcast.send_at and
                          as_utc(broadcast.send_at) > now else now)
    broadcast.state, broadcast.approved_by = "approved", approver
    _audit(session, approver, "broadcast-approve", broadcast)
    if broadcast.send_at is None or as_utc(broadcast.send_at) <= now:
        await start(session, settings, broadcast, now)
    return broadcast


async def start(session: AsyncSession, settings: Settings, broadcast: Broadcast, now: datetime) -> int:
    """Write one outbox row per reachable recipient (once: the state moves from approved in the same transaction,
    and the dedup keys refuse a second copy); returns how many were added."""
    moved = await session.execute(update(Broadcast).where(Broadcast.id == broadcast.id,
                                                          Broadcast.state == "approved")
                                  .values(state="sending", started_at=now))
    if moved.rowcount != 1:
        return 0
    postgres = session.bind.dialect.name == "postgresql"
    if mass.is_mass(broadcast):  # one message to a tag, sent once (bot/broadcasts/mass.py)
        added = await enqueue(session, dedup=f"warn-mass:{broadcast.id}", channel=mass.ROUTE,
                              target=str(mass.tag_of(broadcast)), postgres=postgres, priority=PRIORITY,
                              payload={"text": f"{broadcast.text}\n\n{UNSUBSCRIBE}", "broadcast": broadcast.id},
                              broadcast_id=broadcast.id)
        broadcast.state, broadcast.started_at = "sending", now
        return int(added)
    insert = pg_insert if postgres else sqlite_insert
    rows = segments.deliveries(settings, broadcast, f"{broadcast.text}\n\n{UNSUBSCRIBE}", priority=PRIORITY,
                               now=now, postgres=postgres)
    columns = ["dedup", "channel", "target", "payload", "status", "attempts", "unknowns", "next_attempt_at",
               "created_at", "priority", "broadcast_id", "quiet"]
    added = await session.execute(insert(TABLE).from_select(columns, rows).on_conflict_do_nothing())
    skipped = (await segments.preview(session, settings, broadcast))["skipped"]
    if segments.takes(broadcast, "wecom"):
        robots = segments.township_robots(settings, broadcast)
        for code in robots["with"]:
            await enqueue(session, dedup=f"warn-wecom:{broadcast.id}:{code}", channel=segments.ROUTES["wecom"],
                          target=code, payload={"text": f"【预警提示·请转告各村】\n{broadcast.text}"},
                          postgres=postgres, priority=PRIORITY, broadcast_id=broadcast.id)
    if segments.takes(broadcast, "relay"):
        handed = await relay.queue(session, settings, broadcast, now, postgres)
        if handed["no-cadre"]:
            skipped["no-cadre"] = handed["no-cadre"]  # villages no one can relay to
    await session.execute(update(Broadcast).where(Broadcast.id == broadcast.id).values(skipped=skipped))
    broadcast.state, broadcast.started_at, broadcast.skipped = "sending", now, skipped
    return added.rowcount or 0


async def pause(session: AsyncSession, broadcast: Broadcast, actor: str) -> None:
    """No more copies leave (the dispatcher skips a paused broadcast's rows; those already in hand finish)."""
    if broadcast.state not in ("approved", "sending"):
        raise BroadcastError(f"broadcast {broadcast.id} is {broadcast.state}: nothing to pause")
    broadcast.state = "paused"
    _audit(session, actor, "broadcast-pause", broadcast)


async def resume(session: AsyncSession, broadcast: Broadcast, actor: str) -> None:
    if broadcast.state != "paused":
        raise BroadcastError(f"broadcast {broadcast.id} is {broadcast.state}, not paused")
    broadcast.state = "sending" if broadcast.started_at else "approved"  # paused before its time: waits for it
    _audit(session, actor, "broadcast-resume", broadcast)


async def cancel(session: AsyncSession, broadcast: Broadcast, actor: str) -> int:
    """Stop it for good: copies not yet sent are cancelled (those in hand finish); returns how many."""
    if broadcast.state in ("done", "cancelled"):
        raise BroadcastError(f"broadcast {broadcast.id} is {broadcast.state} already")
    broadcast.state, broadcast.finished_at = "cancelled", utcnow()
    _audit(session, actor, "broadcast-cancel", broadcast)
    return await sweep_cancelled(session)


async def sweep_cancelled(session: AsyncSession) -> int:
    """Cancel the unsent copies of cancelled warnings (one statement, whatever their number); copies in a worker's
    hand at the cancel finish, and one sent back for a retry is caught by the leader's next round."""
    cancelled = select(Broadcast.id).where(Broadcast.state == "cancelled").scalar_subquery()
    result = await session.execute(update(TABLE).where(TABLE.c.broadcast_id.in_(cancelled),
                                                       TABLE.c.status == PENDING, TABLE.c.lease_until.is_(None))
                                   .values(status=CANCELLED))
    return result.rowcount or 0


async def retry_failed(session: AsyncSession, broadcast: Broadcast, actor: str) -> tuple[int, int]:
    """Send the failed copies again: those the platform refused. A copy given up after an unknown outcome may have
    arrived, and is left alone. Returns (queued again, left alone)."""
    if broadcast.state not in ("sending", "done"):
        raise BroadcastError(f"broadcast {broadcast.id} is {broadcast.state}: nothing to retry")
    failed = (TABLE.c.broadcast_id == broadcast.id, TABLE.c.status == FAILED)
    again = await session.execute(update(TABLE).where(*failed, TABLE.c.unknowns == 0)
                                  .values(status=PENDING, attempts=0, next_attempt_at=utcnow(), last_error=None,
                                          lease_until=None))
    left = await session.scalar(select(func.count()).select_from(TABLE).where(*failed))
    if again.rowcount:
        broadcast.state, broadcast.finished_at = "sending", None
    _audit(session, actor, "broadcast-retry", broadcast)
    return again.rowcount or 0, int(left or 0)


async def progress(session: AsyncSession, settings: Settings, broadcast: Broadcast) -> dict[str, Any]:
    """Counts of its copies by status, by route and status, and the village relay's coverage."""
    rows = (await session.execute(select(TABLE.c.channel, TABLE.c.status, func.count())
                                  .where(TABLE.c.broadcast_id == broadcast.id)
                                  .group_by(TABLE.c.channel, TABLE.c.status))).all()
    totals = {s: 0 for s in (SENT, FAILED, UNREACHABLE, PENDING, CANCELLED)}
    routes: dict[str, dict[str, int]] = {}
    for route, status, count in rows:
        totals[status] = totals.get(status, 0) + count
        routes.setdefault(route, {})[status] = count
    skipped = sum((broadcast.skipped or {}).values())
    relays = (await relay.coverage(session, settings, broadcast)
              if segments.takes(broadcast, "relay") else [])
    shown = {"id": broadcast.id, "state": broadcast.state, "total": sum(totals.values()) + skipped, **totals,
             "skipped": broadcast.skipped or {}, "routes": routes, "relay": relays}
    if mass.is_mass(broadcast):
        shown["mass"] = await mass.progress(session, broadcast)
    return shown


async def reach(session: AsyncSession, settings: Settings, since: datetime,
                scope: list[str] | None = None) -> dict[str, dict[str, int]]:
    """Copies of warnings started since `since`, by route and status ({"warn-telegram": {"sent": 120, …}}); with
    `scope` (township codes), of the warnings staff limited to those townships see."""
    query = (select(TABLE.c.channel, TABLE.c.status, func.count())
             .join(Broadcast, Broadcast.id == TABLE.c.broadcast_id).where(Broadcast.started_at >= since))
    if scope is not None:
        started = await session.scalars(select(Broadcast).where(Broadcast.started_at >= since))
        query = query.where(Broadcast.id.in_([b.id for b in started if segments.visible_to(settings, b, scope)]))
    rows = await session.execute(query.group_by(TABLE.c.channel, TABLE.c.status))
    found: dict[str, dict[str, int]] = {}
    for route, status, count in rows.all():
        found.setdefault(route, {})[status] = count
    return found


async def advance(session: AsyncSession, settings: Settings, now: datetime) -> int:
    """The leader's round: send approved warnings whose time has come, tidy cancelled ones, and mark done those with
    nothing left to send. Returns how many changed."""
    changed = 0
    due = await session.scalars(select(Broadcast).where(Broadcast.state == "approved", Broadcast.send_at <= now)
                                .with_for_update())
    for broadcast in due.all():
        await start(session, settings, broadcast, now)
        changed += 1
    changed += bool(await sweep_cancelled(session))
    changed += await mass.settle_orphans(session, now)
    waiting = select(TABLE.c.id).where(TABLE.c.broadcast_id == Broadcast.id, TABLE.c.status == PENDING).exists()
    finished = await session.execute(update(Broadcast).where(Broadcast.state == "sending", ~waiting)
                                     .values(state="done", finished_at=now))
    reminded = await relay.remind_due(session, settings, now, session.bind.dialect.name == "postgresql")
    return changed + (finished.rowcount or 0) + reminded
