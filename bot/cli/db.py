"""`db`: the database schema."""

from __future__ import annotations

import asyncio

import typer

from bot.cli.common import settings, vault

app = typer.Typer(help="The database schema.")


@app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest version."""
    from bot.storage.database import Database

    s = settings()

    async def main() -> None:
        db = Database(s.database.url)
        try:
            await db.upgrade(vault(s))
        finally:
            await db.close()

    asyncio.run(main())
    print("database schema is up to date")
