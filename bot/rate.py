"""A send rate shared by every process on one database: a schedule of send slots in a row (`rate_buckets`).

Platforms count messages per bot, not per process: Telegram takes about 30 a second from one bot, whatever number
of workers send them. Before each send a worker books the next free slot (one statement in one transaction: the
slot is `max(next_slot, now)`, and `next_slot` moves on by 1/per_second) and waits for it. Slots are booked back to
back while there is work, and in any second at most about `per_second` sends leave (set it a little below the
platform's limit: a send leaves a few milliseconds after its slot; one whose process stalled past it by more than
LATE books once more rather than leave in a burst with the next ones). A
platform's "too many requests, retry after N s" starts no slot for N seconds, in every process (`hold`). A worker
killed after booking leaves its slot unused: a gap of 1/per_second.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.database import Database
from bot.storage.models import RateBucket, utcnow
from bot.tips.ledger import as_utc

LATE = 0.02  # seconds after its slot a send may still leave


class SharedRate:
    def __init__(self, db: Database, name: str, per_second: float) -> None:
        self.db, self.name = db, name
        self.step = timedelta(seconds=1 / per_second)

    async def take(self) -> None:
        """Book the next send slot and wait for it. A worker that wakes up too late (its process stalled) gives
        the slot up and books another: sent late, it would leave beside the next slots' sends, a burst the
        platform counts against its limit. Late again, it goes: a process that slow must still send."""
        rebooked = False
        while True:
            try:
                slot = await self._book(self.step)
            except OperationalError:  # SQLite: another process held the write lock too long; book again
                await asyncio.sleep(0.01)
                continue
            wait = (slot - utcnow()).total_seconds()
            if wait > 0:
                await asyncio.sleep(wait)
            if rebooked or (utcnow() - slot).total_seconds() <= LATE:
                return
            rebooked = True

    async def hold(self, seconds: float) -> None:
        """No new slot starts in the next `seconds` (the platform asked us to wait; several such answers at once
        do not add up)."""
        await self._book(timedelta(0), not_before=utcnow() + timedelta(seconds=seconds))

    async def _book(self, length: timedelta, not_before: datetime | None = None) -> datetime:
        """Take the span `length` from the schedule; returns when it starts."""
        async with self.db.transaction() as session:
            if self.db.is_sqlite:  # write first: SQLite then holds its write lock through the read-modify-write
                await session.execute(update(RateBucket).where(RateBucket.name == self.name)
                                      .values(next_slot=RateBucket.next_slot))
            booked = await self._locked(session)
            if booked is None:  # the first booking ever: make the row, then lock it like everyone else
                insert = sqlite_insert if self.db.is_sqlite else pg_insert
                await session.execute(insert(RateBucket).values(name=self.name, next_slot=utcnow())
                                      .on_conflict_do_nothing())
                booked = await self._locked(session)
            assert booked is not None
            slot = max(booked, not_before or utcnow())
            await session.execute(update(RateBucket).where(RateBucket.name == self.name)
                                  .values(next_slot=slot + length))
            return slot

    async def _locked(self, session: AsyncSession) -> datetime | None:
        found = await session.scalar(select(RateBucket.next_slot).where(RateBucket.name == self.name)
                                     .with_for_update())
        return as_utc(found) if found is not None else None
