"""One leader among the serving processes, by a lease row: the periodic jobs that must happen once (a campaign
opening or closing on time, later the broadcast schedule) run in the process that holds the lease.

`hold()` takes the lease when nobody holds it or it ran out, and renews it when this process holds it, in one
statement each (SQLite and PostgreSQL alike), so two processes never both win the same moment. A leader that stops
cleanly gives the lease up (`release`); one that is killed keeps it until it runs out (`seconds`), then the next
process to try takes it. Processes compare the lease with their own clocks: on several machines keep them in
sync (NTP) to well under `seconds`.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.storage.database import Database
from bot.storage.models import Lease as LeaseRow
from bot.storage.models import utcnow

log = logging.getLogger(__name__)
TABLE = LeaseRow.__table__
GIVEN_UP = datetime(2000, 1, 1, tzinfo=UTC)


def process_name() -> str:
    """This process among all others: host, pid and a random part (a pid is reused after a restart)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    def __init__(self, db: Database, name: str = "scheduler", seconds: float = 30.0,
                 holder: str | None = None) -> None:
        self.db, self.name, self.seconds = db, name, seconds
        self.holder = holder or process_name()
        self.leading = False

    async def hold(self, now: datetime | None = None) -> bool:
        """Take or renew the lease; True while this process leads."""
        now = now or utcnow()
        until = now + timedelta(seconds=self.seconds)
        async with self.db.transaction() as session:
            taken = await session.execute(
                update(TABLE).where(TABLE.c.name == self.name,
                                    or_(TABLE.c.holder == self.holder, TABLE.c.expires_at < now))
                .values(holder=self.holder, expires_at=until))
            won = taken.rowcount == 1
            if not won:
                insert = sqlite_insert if self.db.is_sqlite else pg_insert
                taken = await session.execute(insert(TABLE).values(name=self.name, holder=self.holder,
                                                                   expires_at=until).on_conflict_do_nothing())
                won = taken.rowcount == 1
        if won != self.leading:
            log.info("leader: this process %s the %s jobs", "now leads" if won else "no longer leads", self.name)
        self.leading = won
        return won

    async def release(self) -> None:
        """Give the lease up at a clean stop, so another process leads at its next try."""
        if not self.leading:
            return
        async with self.db.transaction() as session:
            await session.execute(update(TABLE).where(TABLE.c.name == self.name, TABLE.c.holder == self.holder)
                                  .values(expires_at=GIVEN_UP))
        self.leading = False
