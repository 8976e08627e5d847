"""A durable outbox: messages to deliver outside the request (staff alerts, reporters' notices).

A message is enqueued in the same transaction as the change it announces, so it exists exactly when the change
does. Dispatchers (one or more, in any process) claim due rows in batches under a lease, send them through the
channel's `Sender`, and mark them sent, retry them later with exponential backoff, or give up on them. A worker that
dies holding a claim only delays its rows: the lease lapses and another worker takes them. On PostgreSQL claims use
`FOR UPDATE SKIP LOCKED`; on SQLite the claiming UPDATE is one write statement, and SQLite has one writer at a time.

A send whose outcome is unknown (no answer in time, the connection dropped after the request went out, the worker
died mid-send: the message may have arrived) is never repeated at once: the row is tried once more after a long
pause (`unknown_pause`), and a second unknown outcome gives it up. The platforms we send to have no idempotency key,
so a message arrives at most twice, and only when an answer was lost.

Logs name rows by id, channel and dedup key, never by what they say or to whom.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import httpx
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.rate import SharedRate
from bot.storage.database import Database
from bot.storage.models import Broadcast, OutboxMessage, utcnow

log = logging.getLogger(__name__)
TABLE = OutboxMessage.__table__
PENDING, SENT, FAILED = "pending", "sent", "failed"
UNREACHABLE = "unreachable"  # the platform will not take it for this recipient (blocked the bot, window closed)
CANCELLED = "cancelled"  # a cancelled broadcast's unsent rows (bot/broadcasts/)
ORPHAN_CHECK_SECONDS = 60.0
MAX_ERROR = 200
UNKNOWN_PAUSE = 1800.0  # seconds before the one more try of a message whose outcome is unknown
# httpx errors after which the request surely never reached the platform (no connection, no free one, a URL it
# cannot speak to); any other transport error may come after the request was written, so its outcome is unknown
NOT_SENT: tuple[type[httpx.TransportError], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                                                    httpx.UnsupportedProtocol)


@dataclass(frozen=True)
class Outcome:
    """What a sender made of one message: sent, not sent but worth another try later, failed for good, or unknown
    (the request went out and no answer came: the message may have arrived)."""

    kind: Literal["sent", "retry", "failed", "unknown", "unreachable"]
    error: str = ""
    after: float | None = None  # for a retry: wait at least this long (a platform's retry_after)

    @classmethod
    def sent(cls) -> Outcome:
        return cls("sent")

    @classmethod
    def retry(cls, error: str, after: float | None = None) -> Outcome:
        return cls("retry", error, after)

    @classmethod
    def failed(cls, error: str) -> Outcome:
        return cls("failed", error)

    @classmethod
    def unknown(cls, error: str) -> Outcome:
        return cls("unknown", error)

    @classmethod
    def unreachable(cls, error: str) -> Outcome:
        """Not delivered, and no retry would change that for now (the resident blocked the bot, a window closed)."""
        return cls("unreachable", error)


class Sender(Protocol):
    async def __call__(self, target: str, payload: dict[str, Any]) -> Outcome: ...


@dataclass
class Claimed:
    """A row this worker holds until `lease_until`."""

    id: int
    dedup: str
    channel: str
    target: str
    payload: dict[str, Any]
    attempts: int
    lease_until: datetime
    unknowns: int = 0  # sends of this row whose outcome is unknown, a lapsed claim included


async def enqueue(session: AsyncSession, *, dedup: str, channel: str, target: str, payload: dict[str, Any],
                  postgres: bool, priority: int = 0, broadcast_id: int | None = None) -> bool:
    """Add a message in the caller's transaction; False when a message with this dedup key already exists. Due
    rows of a higher `priority` are sent first; a broadcast's rows stop while it is paused or cancelled."""
    insert = pg_insert if postgres else sqlite_insert
    now = utcnow()
    stmt = (insert(TABLE).values(dedup=dedup, channel=channel, target=target, payload=payload, status=PENDING,
                                 attempts=0, next_attempt_at=now, created_at=now, priority=priority,
                                 broadcast_id=broadcast_id)
            .on_conflict_do_nothing(index_elements=["dedup"]).returning(TABLE.c.id))
    return (await session.execute(stmt)).first() is not None


class Dispatcher:
    """`quiet()` says whether quiet hours hold back the rows marked `quiet` right now (they wait, unclaimed)."""

    def __init__(self, db: Database, senders: Mapping[str, Sender], *, batch: int = 20, lease_seconds: float = 60.0,
                 base_backoff: float = 2.0, max_backoff: float = 600.0, max_attempts: int = 15,
                 unknown_pause: float = UNKNOWN_PAUSE, quiet: Callable[[], bool] | None = None,
                 rates: Mapping[str, SharedRate] | None = None, parallel: Mapping[str, int] | None = None) -> None:
        self.db, self.senders, self.batch = db, dict(senders), batch
        self.quiet = quiet
        self.rates = dict(rates or {})  # per channel: a send rate shared with every other process
        self.parallel = dict(parallel or {})  # per channel: recipients sent to at once (default one)
        self.lease = timedelta(seconds=lease_seconds)
        self.base_backoff, self.max_backoff, self.max_attempts = base_backoff, max_backoff, max_attempts
        self.unknown_pause = unknown_pause
        self._warned: set[str] = set()
        self._orphans_checked: float | None = None
        self._queued: dict[tuple[str, str], list[Claimed]] = {}  # recipients with rows in hand, and those rows
        self._rooms: dict[str, asyncio.Semaphore] = {}  # per channel: room for `parallel[channel]` recipients
        self._sending: set[asyncio.Task[None]] = set()
        self._in_hand = 0  # rows claimed and not yet settled

    async def claim(self, limit: int | None = None) -> list[Claimed]:
        """Take up to `limit` (default `batch`) due rows of channels we can send: lease them and count the attempt
        (committed)."""
        if not self.senders:
            return []
        await self._recover()
        now = utcnow()
        lease_until = now + self.lease
        due = (select(TABLE.c.id)
               .where(TABLE.c.status == PENDING, TABLE.c.next_attempt_at <= now, TABLE.c.lease_until.is_(None),
                      TABLE.c.channel.in_(sorted(self.senders)))
               .order_by(TABLE.c.priority.desc(), TABLE.c.next_attempt_at, TABLE.c.id).limit(limit or self.batch)
               .with_for_update(skip_locked=True))  # PostgreSQL only; SQLite renders no FOR UPDATE
        stopped = select(Broadcast.id).where(Broadcast.state.in_(("paused", "cancelled")))
        due = due.where(TABLE.c.broadcast_id.is_(None) | TABLE.c.broadcast_id.not_in(stopped.scalar_subquery()))
        if self.quiet is not None and self.quiet():
            due = due.where(TABLE.c.quiet.is_(False))
        stmt = (update(TABLE).where(TABLE.c.id.in_(due.scalar_subquery()))
                .values(lease_until=lease_until, attempts=TABLE.c.attempts + 1)
                .returning(TABLE.c.id, TABLE.c.dedup, TABLE.c.channel, TABLE.c.target, TABLE.c.payload,
                           TABLE.c.attempts, TABLE.c.unknowns, TABLE.c.priority))
        async with self.db.transaction() as session:
            rows = (await session.execute(stmt)).all()
        rows = sorted(rows, key=lambda r: (-r.priority, r.id))  # sent in this order, channel by channel
        return [Claimed(r.id, r.dedup, r.channel, r.target, dict(r.payload or {}), r.attempts, lease_until, r.unknowns)
                for r in rows]

    async def deliver(self, row: Claimed) -> None:
        """Send one claimed row and record the outcome."""
        sender = self.senders.get(row.channel)
        if sender is None:  # claim() only takes channels we can send; a caller may hand us anything
            await self._release(row)
            return
        if not await self._keep(row):
            log.warning("outbox: message %d (%s) was taken over by another worker; not sent here", row.id, row.channel)
            return
        rate = self.rates.get(row.channel)
        if rate is not None:
            await rate.take()
        # give up waiting before the lease lapses, or another worker could send the same row meanwhile
        budget = (row.lease_until - utcnow()).total_seconds() * 0.9
        try:
            async with asyncio.timeout(budget):
                outcome = await sender(row.target, row.payload)
        except TimeoutError:  # the request may be out: we cannot tell
            outcome = Outcome.unknown("still waiting as the lease ran short")
        except Exception as exc:  # a sender bug or an unexpected transport error: it may have sent the message
            log.debug("outbox: sender for %s raised", row.channel, exc_info=True)
            outcome = Outcome.unknown(f"sender raised {exc.__class__.__name__}")
        if rate is not None and outcome.kind == "retry" and outcome.after:
            await rate.hold(outcome.after)  # the platform counts per bot: every process waits
        await self._settle(row, outcome)

    async def run_once(self) -> int:
        """Claim one batch and deliver it: each recipient's rows in order, channels side by side, and within a
        channel up to `parallel[channel]` recipients at once (one by default)."""
        await self._check_orphans()
        rows = await self.claim()
        await asyncio.gather(*self._start(rows))
        return len(rows)

    async def run(self, stop: asyncio.Event, poll: float = 1.0) -> None:
        """Deliver until `stop` is set, topping the rows in hand up to a batch whenever half of it is sent, so that a
        bulk send keeps its channel's pace from one batch to the next (and a worker never holds more than a batch);
        with nothing due, look again after `poll` seconds."""
        waiting = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                full = False
                if self._in_hand <= self.batch // 2:
                    try:
                        await self._check_orphans()
                        room = self.batch - self._in_hand
                        rows = await self.claim(room)
                        full = len(rows) == room
                        self._start(rows)
                    except Exception:
                        log.exception("outbox: dispatch round failed; trying again")
                if full or self._in_hand > self.batch // 2:  # more is due: go on once some of it is sent
                    await asyncio.wait({waiting, *self._sending}, return_when=asyncio.FIRST_COMPLETED)
                else:
                    await asyncio.wait({waiting}, timeout=poll)
            await asyncio.gather(*self._sending)  # the rows in hand are finished (or their lease lapses)
        finally:
            waiting.cancel()
            for task in self._sending:  # cancelled while sending: what is left comes back when its lease lapses
                task.cancel()

    # -- internals ------------------------------------------------------------------------------------------------
    def _start(self, rows: list[Claimed]) -> list[asyncio.Task[None]]:
        """Deliver claimed rows in the background: a recipient's rows one after the other (after any of theirs
        still in hand), up to `parallel[channel]` recipients of a channel at once."""
        started = []
        for row in rows:
            self._in_hand += 1
            key = (row.channel, row.target)
            if key in self._queued:  # this recipient has a row in hand: this one follows it
                self._queued[key].append(row)
                continue
            self._queued[key] = [row]
            room = self._rooms.setdefault(row.channel, asyncio.Semaphore(self.parallel.get(row.channel, 1)))
            task = asyncio.create_task(self._deliver_queue(key, room))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
            started.append(task)
        return started

    async def _deliver_queue(self, key: tuple[str, str], room: asyncio.Semaphore) -> None:
        queue = self._queued[key]
        try:
            async with room:
                while queue:
                    row = queue.pop(0)
                    try:
                        await self.deliver(row)
                    except Exception:  # the database failed us: the lease lapses and the row comes back
                        log.exception("outbox: message %d (%s) could not be recorded", row.id, row.channel)
                    finally:
                        self._in_hand -= 1
        finally:
            self._in_hand -= len(queue)
            del self._queued[key]

    async def _keep(self, row: Claimed) -> bool:
        """Renew the lease before sending when half of it is gone (a long batch); False if the claim was lost."""
        now = utcnow()
        if row.lease_until - now > self.lease / 2:
            return True
        renewed = now + self.lease
        async with self.db.transaction() as session:
            result = await session.execute(update(TABLE).where(*self._ours(row)).values(lease_until=renewed))
        if result.rowcount != 1:
            return False
        row.lease_until = renewed
        return True

    async def _settle(self, row: Claimed, outcome: Outcome) -> None:
        now = utcnow()
        error = outcome.error[:MAX_ERROR] or None
        where: tuple[Any, ...] = self._ours(row)
        if outcome.kind == "sent":
            # sent is sent, whoever holds the lease now
            values: dict[str, Any] = {"status": SENT, "sent_at": now, "lease_until": None, "last_error": None}
            where = (TABLE.c.id == row.id, TABLE.c.status == PENDING)
            log.info("outbox: message %d (%s) sent", row.id, row.channel)
        elif outcome.kind == "unknown":
            values = self._unknown(row, outcome.error, "no answer")
            if values["status"] == PENDING:
                values["next_attempt_at"] = now + timedelta(seconds=self.unknown_pause)
        elif outcome.kind == "unreachable":
            values = {"status": UNREACHABLE, "lease_until": None, "last_error": error}
            log.info("outbox: message %d (%s) not deliverable to its recipient now: %s", row.id, row.channel, error)
        elif outcome.kind == "failed" or row.attempts >= self.max_attempts:
            values = {"status": FAILED, "lease_until": None, "last_error": error}
            log.error("outbox: message %d (%s, %s) failed for good after %d attempt(s): %s", row.id, row.channel,
                      row.dedup, row.attempts, error)
        else:
            delay = min(self.max_backoff, self.base_backoff * 2 ** (row.attempts - 1))
            delay = max(delay, outcome.after or 0.0)
            values = {"next_attempt_at": now + timedelta(seconds=delay), "lease_until": None, "last_error": error}
            log.warning("outbox: message %d (%s) not sent (attempt %d: %s); next try in %.0f s", row.id, row.channel,
                        row.attempts, error, delay)
        async with self.db.transaction() as session:
            await session.execute(update(TABLE).where(*where).values(**values))

    def _unknown(self, row: Claimed, reason: str, what: str) -> dict[str, Any]:
        """The row's values after a send whose outcome is unknown, and the one log line that says so: the first time
        one more try after the pause, the second time (or after the last attempt) given up."""
        unknowns = row.unknowns + 1
        if unknowns < 2 and row.attempts < self.max_attempts:
            log.warning("outbox: message %d (%s, %s): outcome unknown (%s: %s), it may have arrived; one more try "
                        "in %.0f s, then it is given up", row.id, row.channel, row.dedup, what, reason,
                        self.unknown_pause)
            return {"status": PENDING, "unknowns": unknowns, "lease_until": None,
                    "last_error": f"outcome unknown ({what}: {reason})"[:MAX_ERROR]}
        log.error("outbox: message %d (%s, %s) given up: outcome unknown (%s: %s), %d unknown outcome(s) in %d "
                  "attempt(s); it may have arrived", row.id, row.channel, row.dedup, what, reason, unknowns,
                  row.attempts)
        return {"status": FAILED, "unknowns": unknowns, "lease_until": None,
                "last_error": f"outcome unknown twice ({what}: {reason})"[:MAX_ERROR]}

    async def _recover(self) -> None:
        """Take back rows whose claim lapsed: their worker never recorded the outcome (it died, maybe in the middle of
        the send), which counts as an unknown outcome. One statement per round, so each lapse is counted once."""
        now = utcnow()
        stmt = (update(TABLE).where(TABLE.c.status == PENDING, TABLE.c.lease_until < now)
                .values(lease_until=None)
                .returning(TABLE.c.id, TABLE.c.dedup, TABLE.c.channel, TABLE.c.attempts, TABLE.c.unknowns))
        async with self.db.transaction() as session:
            lapsed = (await session.execute(stmt)).all()
            for r in lapsed:
                row = Claimed(r.id, r.dedup, r.channel, "", {}, r.attempts, now, r.unknowns)
                values = self._unknown(row, "its worker stopped before recording it", "claim lapsed")
                await session.execute(update(TABLE).where(TABLE.c.id == r.id).values(**values))

    async def _release(self, row: Claimed) -> None:
        """Give a claimed row back untouched (this worker has no sender for it)."""
        async with self.db.transaction() as session:
            await session.execute(update(TABLE).where(*self._ours(row))
                                  .values(lease_until=None, attempts=TABLE.c.attempts - 1))
        self._warn_orphan(row.channel)

    @staticmethod
    def _ours(row: Claimed) -> tuple[Any, ...]:
        return TABLE.c.id == row.id, TABLE.c.status == PENDING, TABLE.c.lease_until == row.lease_until

    async def _check_orphans(self) -> None:
        """Now and then, warn (once per channel) about pending rows no sender of ours can deliver."""
        loop_now = asyncio.get_running_loop().time()
        if self._orphans_checked is not None and loop_now - self._orphans_checked < ORPHAN_CHECK_SECONDS:
            return
        self._orphans_checked = loop_now
        query = select(TABLE.c.channel).where(TABLE.c.status == PENDING).distinct()
        if self.senders:
            query = query.where(TABLE.c.channel.not_in(sorted(self.senders)))
        async with self.db.session() as session:
            for channel in await session.scalars(query):
                self._warn_orphan(channel)

    def _warn_orphan(self, channel: str) -> None:
        if channel not in self._warned:
            self._warned.add(channel)
            log.warning("outbox: messages for channel %r are waiting but this worker cannot send them; "
                        "they stay pending", channel)
