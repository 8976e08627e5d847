"""Helpers for tests that race the engine against other PostgreSQL transactions."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy import text

from bot.engine import Engine


async def connect(engine: Engine) -> asyncpg.Connection:
    """A connection of its own to the engine's database (another worker, a staff tool, an administrator)."""
    return await asyncpg.connect(engine.services.db.url.set(drivername="postgresql").render_as_string(False))


async def waiting_for_locks(engine: Engine, count: int = 1) -> None:
    """Until exactly `count` statements on the engine's database wait for a lock."""
    for _ in range(250):
        async with engine.services.db.session() as session:
            if await session.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                         " AND wait_event_type = 'Lock'")) == count:
                return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not {count} statements waiting for a lock")
