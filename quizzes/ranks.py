"""Where a player who has just finished stands, without counting every player ahead each time.

Counting the players ahead (`campaigns.rank_of`) reads as many rows as there are: at a county's scale (100,000
players, dozens of attempts finished a second) that would be most of the database's work, and a count whose plan
goes wrong reads every player of every campaign. Instead each process keeps, per campaign, every player's counting
result as one sorted array of keys, read again at most every SNAPSHOT_SECONDS (one query), and a rank is a binary
search in it, corrected by what this process has seen change since: players whose counting result moved (their
new key counts, the one the array holds for them does not). Results other processes took since the array was read
are not in it yet, so a rank may be off by as many places as players finished elsewhere in those seconds; within
one process it is exact.

PostgreSQL only (quizzes/answering.py); SQLite deployments are small and count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)
SNAPSHOT_SECONDS = 5.0
SPAN = 1e7  # seconds of a result: a key is -score * SPAN + seconds, so that more right, then faster, sorts first
_KEYS = f"""
    SELECT best_score * {-SPAN}::float8 + least(best_seconds, {SPAN - 1}::float8) AS k FROM quiz_players
    WHERE campaign_id = $1 AND best_score IS NOT NULL ORDER BY k"""  # key(), for every player who counts


def key(score: int, seconds: float) -> float:
    """A counting result's place in the order: smaller is ahead (as `campaigns.rank_of` orders them)."""
    return score * -SPAN + min(seconds, SPAN - 1)


@dataclass
class _Book:
    keys: array[float] = field(default_factory=lambda: array("d"))
    read_at: float | None = None  # time.monotonic() when the query for `keys` was sent
    moved: dict[int, tuple[float, float]] = field(default_factory=dict)  # player → (when, their key now)
    replaced: list[tuple[float, float]] = field(default_factory=list)  # (when, the key `keys` may hold for one)
    reading: asyncio.Lock = field(default_factory=asyncio.Lock)


class Ranks:
    """This process's rank books, one per campaign being played."""

    def __init__(self, seconds: float = SNAPSHOT_SECONDS) -> None:
        self.seconds = seconds
        self._books: dict[int, _Book] = {}

    def moved(self, campaign_id: int, player_id: int, before: float | None, now: float) -> None:
        """A player's counting result changed from key `before` (None: they had none) to `now`."""
        book = self._books.get(campaign_id)
        if book is None or book.read_at is None:
            return  # read afresh at the first rank
        moment = time.monotonic()
        if player_id not in book.moved and before is not None:
            book.replaced.append((moment, before))  # as the array holds it, unless it moved elsewhere since
        book.moved[player_id] = (moment, now)

    async def rank(self, driver: Any, campaign_id: int, mine: float) -> int:
        """1 + the players ahead of the result with key `mine` (a player's own, as they count now)."""
        book = self._books.setdefault(campaign_id, _Book())
        if book.read_at is None or time.monotonic() - book.read_at >= self.seconds:
            try:
                await self._read(driver, campaign_id, book)
            except Exception as exc:  # the answer is kept already: an older array does for its rank
                if book.read_at is None:
                    raise
                log.warning("quiz ranks: could not read the standings again (%s)", exc.__class__.__name__)
        ahead = bisect_left(book.keys, mine)
        ahead -= sum(1 for _, k in book.replaced if k < mine)
        ahead += sum(1 for _, k in book.moved.values() if k < mine)
        return 1 + max(0, ahead)

    async def _read(self, driver: Any, campaign_id: int, book: _Book) -> None:
        if book.reading.locked() and book.read_at is not None:
            return  # being read: the array a few seconds old does meanwhile
        async with book.reading:
            if book.read_at is not None and time.monotonic() - book.read_at < self.seconds:
                return
            sent = time.monotonic()
            rows = await driver.fetch(_KEYS, campaign_id)
            book.keys = array("d", (row[0] for row in rows))
            book.read_at = sent
            # what changed before the query was sent is in the array now
            book.moved = {p: (t, k) for p, (t, k) in book.moved.items() if t >= sent}
            book.replaced = [(t, k) for t, k in book.replaced if t >= sent]
