"""Engine and session factory, and schema migration through Alembic."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Executable, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util import greenlet_spawn

from bot.config import LOCAL_DATA, sqlite_folder

if TYPE_CHECKING:
    from bot.vault import Vault

log = logging.getLogger(__name__)
RETRYABLE = {"40001", "40P01"}  # serialization failure, deadlock detected: the transaction can be tried again
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
POOL_OVERFLOW = 16


class Database:
    """One async engine and its session factory."""

    def __init__(self, url: str, echo: bool = False, pool_size: int = 32) -> None:
        self.url = make_url(url)
        if sqlite_folder(url) == LOCAL_DATA:
            LOCAL_DATA.mkdir(exist_ok=True)  # the local default works on a fresh checkout; another folder must exist
        # hide_parameters: a failed statement's error (logged with its traceback) names no value it carried, since
        # values can be residents' or staff members' words
        kwargs: dict[str, object] = {"echo": echo, "hide_parameters": True}
        if not self.is_sqlite:
            # no pre-ping: it costs a round trip per message; connections broken by a database restart are
            # dropped when they fail, and pool_recycle retires idle ones
            kwargs.update(pool_size=pool_size, max_overflow=POOL_OVERFLOW, pool_recycle=1800)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time: queue this process's transactions instead of failing on "locked"
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        # PostgreSQL's hot statements (`driver`) queue here, first come first served, for at most as many connections
        # as the pool keeps: a burst beyond it (hundreds of players at once) waits in order instead of thrashing in
        # the pool's queue (where a request arriving later may take a connection first: seconds at the tail) and
        # opening and closing overflow connections (a PostgreSQL process each)
        self._drivers = asyncio.Semaphore(pool_size) if not self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    def session(self) -> AsyncSession:
        return self.sessions()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A read-modify-write unit: serialised where the database needs it, committed when the block ends."""
        async with self.serialized(), self.session() as session:
            yield session
            await session.commit()

    @asynccontextmanager
    async def turn(self, locked: bool = False) -> AsyncIterator[TurnTransaction]:
        """One message's unit of work (see `TurnTransaction`): committed when the block ends, undone on an error.
        `locked`: PostgreSQL holds the conversation row from the start (for a turn that lost too many races)."""
        async with self.serialized(), self.engine.connect() as conn:
            if self.is_sqlite:
                async with conn.begin():
                    tx = TurnTransaction(self, conn, None, locked=True)
                    try:
                        yield tx
                        await tx.finish()
                    finally:
                        await tx.close()
                return
            driver = (await conn.get_raw_connection()).driver_connection
            tx = TurnTransaction(self, conn, driver, locked)
            try:
                if locked:
                    await tx.begin()
                yield tx
                await tx.finish()
            except BaseException as exc:
                if driver.is_closed():  # the database went away (a restart, a cut): so did the pool's other
                    await conn.invalidate()  # connections; start afresh and let the caller try again
                    await self.engine.dispose(close=False)
                    raise ConnectionLost from exc
                try:
                    await tx.rollback()
                finally:
                    if driver.is_in_transaction():  # never hand the pool a connection inside a transaction
                        await conn.invalidate()
                if _sqlstate(exc) in RETRYABLE:  # a deadlock with another message of the same user
                    raise Conflict from exc
                raise
            await tx.write_afterwards()

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[Any]:
        """PostgreSQL: the pool's asyncpg connection itself, for hot statements that run on their own (each one
        atomic, no BEGIN or COMMIT); SQLAlchemy's layers (even its Connection around a pooled one) cost more CPU
        than such statements."""
        assert self._drivers is not None
        async with self._drivers:
            pooled = await self.engine.raw_connection()
            driver = pooled.driver_connection
            try:
                yield driver
            except BaseException:
                if driver.is_closed():  # the database went away: so did the pool's other connections
                    await greenlet_spawn(pooled.invalidate)
                    await self.engine.dispose(close=False)
                raise
            finally:
                await greenlet_spawn(pooled.close)  # back to the pool (where a reset may need the event loop)

    def serialized(self) -> AbstractAsyncContextManager[object]:
        """Hold around a read-modify-write transaction: a lock on SQLite, nothing on PostgreSQL (row locks)."""
        return self._write_lock if self._write_lock is not None else nullcontext()

    async def upgrade(self, vault: Vault | None = None) -> None:
        """Bring the schema to the newest migration; `vault` seals what older versions kept in plain text."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade, vault)

    async def is_current(self) -> bool:
        async with self.engine.connect() as conn:
            return await conn.run_sync(_is_current)

    async def close(self) -> None:
        await self.engine.dispose()


class ConnectionLost(Exception):
    """The database connection broke in the middle of a message's transaction (a database restart, a network cut):
    the transaction is lost, the pool holds fresh connections, and the message can be handled again."""


def _sqlstate(exc: BaseException) -> str | None:
    """PostgreSQL's error code, whether asyncpg raised it or SQLAlchemy wrapped it."""
    for error in (exc, getattr(exc, "orig", None), exc.__cause__):
        code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if code:
            return str(code)
    return None


class Conflict(Exception):
    """Another message of the same user changed the conversation while this one was being answered: nothing of
    this turn was kept, and it can be answered again from the newer state."""


class TurnTransaction:
    """One message's unit of work: the conversation row, the channel's exactly-once record and whatever the flow
    writes are kept together or not at all.

    On PostgreSQL most messages only read the conversation and write it back (with the channel's record) in one
    statement, checked against the version read (`bot/storage/conversations.py`): two round trips, no lock held
    while the message is being answered, no BEGIN or COMMIT. A flow that stores more (a report, a subscription)
    works through `session`, whose first statement opens a transaction on the same connection; the conversation's
    version check at the end still decides whether all of it is kept. The hot statements go straight to asyncpg
    (`driver`), because SQLAlchemy's layers cost more CPU than the statements themselves. A `locked` turn (one
    that lost too many races) opens the transaction first and holds the conversation row. On SQLite (one writer at
    a time) everything runs in one transaction, as Core statements.
    """

    def __init__(self, database: Database, connection: AsyncConnection, driver: Any, locked: bool = False) -> None:
        # driver: the asyncpg connection under `connection` on PostgreSQL, None on SQLite
        self.database, self.connection, self.driver, self.locked = database, connection, driver, locked
        self._session: AsyncSession | None = None
        self._outer: Any = None  # the asyncpg transaction this turn opened
        self.wrote = False  # something besides the conversation was (or may have been) written
        self._afterwards: list[tuple[str, tuple[Any, ...]]] = []

    @property
    def postgres(self) -> bool:
        return self.driver is not None

    @property
    def session(self) -> AsyncSession:
        """The ORM session for flows that store more than the conversation; on PostgreSQL its first statement
        opens the transaction (or, in one this turn opened, a savepoint)."""
        if self._session is None:
            self._session = self.database.sessions(bind=self.connection)
            self.wrote = True
        return self._session

    async def begin(self) -> None:
        """PostgreSQL, a locked turn: open the transaction first (the session's work nests in a savepoint)."""
        self._outer = self.driver.transaction()
        await self._outer.start()

    async def execute_after(self, postgres_sql: str, statement: Executable, values: dict[str, Any]) -> None:
        """Write a row that records the message but is no part of its answer (an unanswered question for the
        editors): on PostgreSQL on its own once the turn is kept, so most turns need no transaction; on SQLite in
        the turn's transaction. Lost only if the process dies in between."""
        if self.driver is None:
            await self.connection.execute(statement, values)
        else:
            self._afterwards.append((postgres_sql, tuple(values.values())))

    async def write_afterwards(self) -> None:
        """PostgreSQL, after the commit: the rows of `execute_after`. The message is answered whatever happens here."""
        for sql, values in self._afterwards:
            try:
                await self.driver.execute(sql, *values)
            except Exception as exc:
                log.warning("database: a record kept after the answer was lost (%s)", exc.__class__.__name__)
        self._afterwards.clear()

    async def flush(self) -> None:
        """Send what the session holds, so the turn's last statement joins the same transaction."""
        if self._session is not None:
            await self._session.flush()

    async def finish(self) -> None:
        """Commit: the session's part (its transaction, or its savepoint in ours), then ours."""
        if self._session is not None:
            await self._session.commit()
            await self.close()
        if self._outer is not None:
            outer, self._outer = self._outer, None
            await outer.commit()

    async def rollback(self) -> None:
        try:
            await self.close()  # the session's savepoint or transaction first, then the transaction around it
        finally:
            if self._outer is not None:
                outer, self._outer = self._outer, None
                await outer.rollback()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA secure_delete=ON")  # what is deleted or overwritten (a draft, a notice) is zeroed on disk
    cursor.close()


def _alembic_config(connection: Connection | None = None, vault: Vault | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    cfg.attributes["vault"] = vault
    return cfg


def _upgrade(connection: Connection, vault: Vault | None) -> None:
    command.upgrade(_alembic_config(connection, vault), "head")


def _is_current(connection: Connection) -> bool:
    heads = set(ScriptDirectory.from_config(_alembic_config()).get_heads())
    return set(MigrationContext.configure(connection).get_current_heads()) == heads
