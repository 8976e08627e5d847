"""What the command groups share: the settings, the services, opening the database, file arguments, printing."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from bot import logs
from bot.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.services import Services
    from bot.storage.database import Database
    from bot.vault import Vault

console = Console()


class State:
    """The root's global options, set by its callback before any command runs."""

    config: str | None = None


def say_error(line: str) -> None:
    """One plain line on stderr (never wrapped, so scripts can read it)."""
    sys.stderr.write(line + "\n")


def settings() -> Settings:
    try:
        s = load_settings(State.config)
    except ConfigError as exc:
        for line in exc.problems:
            say_error(line)
        raise typer.Exit(2) from exc
    logging.basicConfig(level=s.log.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logs.install(s)  # on the handler: every logger's records, ours, python-telegram-bot's, httpx's, uvicorn's
    # httpx logs every request's URL at INFO (redacted, but one line per message sent): only at DEBUG
    for noisy in (*logs.QUIET, *(("httpx",) if s.log.level != "DEBUG" else ())):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # python-telegram-bot's DEBUG lines hold whole updates and sendMessage parameters: residents' words and ids
    logging.getLogger("telegram").setLevel(max(logging.INFO, logging.getLevelName(s.log.level)))
    return s


def services(s: Settings) -> Services:
    from bot.services import Services

    return Services.create(s)


def vault(s: Settings) -> Vault:
    from bot.vault import Vault, secret_key

    return Vault(lambda: secret_key(s))


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


async def open_engine(s: Settings) -> object:
    """Open the database; an empty SQLite file is migrated, PostgreSQL must be migrated with `db upgrade`."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.engine import Engine

    svc = None
    try:
        probe_sqlite(s)
        svc = services(s)
        if svc.db.is_sqlite:
            await svc.db.upgrade(svc.vault)
        current = await svc.db.is_current()
    except (OSError, SQLAlchemyError) as exc:
        if svc is not None:  # before the loop ends: aiosqlite's thread would answer into a closed loop
            await svc.db.close()
        say_error(f"cannot open the database {safe_url(s.database.url)}: {' '.join(str(exc).split())[:300]}")
        raise typer.Exit(2) from exc
    if not current:
        await svc.db.close()
        say_error("The database schema is not up to date: run `fangfei db upgrade` first.")
        raise typer.Exit(2)
    return Engine(svc)


async def open_ledger(s: Settings) -> Database:
    """Open the database alone (no engine): an empty SQLite file is migrated, PostgreSQL must be current."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.storage.database import Database

    try:
        probe_sqlite(s)
    except OSError as exc:
        say_error(f"cannot open the database {safe_url(s.database.url)}: {' '.join(str(exc).split())[:300]}")
        raise typer.Exit(2) from exc
    db = Database(s.database.url, s.database.echo, s.database.pool_size)
    try:
        if db.is_sqlite:
            await db.upgrade(vault(s))
        current = await db.is_current()
    except (OSError, SQLAlchemyError) as exc:
        await db.close()
        say_error(f"cannot open the database {safe_url(s.database.url)}: {' '.join(str(exc).split())[:300]}")
        raise typer.Exit(2) from exc
    if not current:
        await db.close()
        say_error("The database schema is not up to date: run `fangfei db upgrade` first.")
        raise typer.Exit(2)
    return db


def transact(work: Callable[[AsyncSession], Awaitable[Any]], *errors: type[Exception]) -> Any:
    """Run a coroutine function of (session) in one transaction of the configured database; one of `errors` (an
    exception with a `message` for staff) is one line and exit 2."""
    import asyncio

    s = settings()

    async def main() -> Any:
        db = await open_ledger(s)
        try:
            async with db.transaction() as session:
                return await work(session)
        finally:
            await db.close()

    try:
        return asyncio.run(main())
    except errors as exc:
        say_error(getattr(exc, "message", str(exc)))
        raise typer.Exit(2) from exc


def when(text: str | None, label: str) -> datetime | None:
    """An ISO 8601 time given on the command line (China time without an offset); a bad one is one line, exit 2."""
    from bot.tips.ledger import china_time

    if text is None:
        return None
    try:
        return china_time(text)
    except ValueError as exc:
        say_error(f"{label}: {text!r} is not an ISO date and time (e.g. 2026-12-10T08:00)")
        raise typer.Exit(2) from exc


def probe_sqlite(s: Settings) -> None:
    """Open an SQLite file once with the standard library: a file that cannot be opened fails here, in this thread,
    instead of in aiosqlite's (which may answer into an event loop that is already closed). OSError if it cannot."""
    import sqlite3

    from sqlalchemy.engine import make_url

    url = make_url(s.database.url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    try:
        sqlite3.connect(url.database).close()
    except sqlite3.Error as exc:
        raise OSError(f"(sqlite3.OperationalError) {exc}") from exc


def existing(path: Path, label: str, folder: bool = False) -> Path:
    """A file (or folder) argument that must be there: otherwise one line, exit 2 (not a traceback, nor an empty
    result)."""
    kind = "folder" if folder else "file"
    if not path.exists():
        say_error(f"{label}{path}: no such {kind}")
        raise typer.Exit(2)
    if path.is_dir() != folder:
        say_error(f"{label}{path}: not a {kind}")
        raise typer.Exit(2)
    return path


def read_text(path: Path, label: str) -> str:
    try:
        return existing(path, label).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        say_error(f"{label}{path}: cannot read it: {reason or exc}")
        raise typer.Exit(2) from exc


def given_lines(text: str | None, batch: Path | None) -> list[str]:
    """The TEXT argument, or the non-blank lines of --batch FILE (- for stdin); anything else is said in one line
    and exits 2 (before the caller loads anything slow)."""
    if batch is not None and text is not None:
        say_error("Give a TEXT or --batch FILE, not both.")
        raise typer.Exit(2)
    if batch is not None:
        source = sys.stdin.read() if str(batch) == "-" else read_text(batch, "--batch: ")
        lines = [line for line in source.splitlines() if line.strip()]
        if not lines:
            say_error(f"--batch: {'stdin' if str(batch) == '-' else batch}: no lines (one text a line).")
            raise typer.Exit(2)
        return lines
    if text is None:
        say_error("Give a TEXT or --batch FILE.")
        raise typer.Exit(2)
    if not text.strip():
        say_error("TEXT is empty: give the words to use, e.g. \"消费全返是真的吗\".")
        raise typer.Exit(2)
    return [text]


def print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
