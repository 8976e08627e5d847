"""The migrations build exactly the schema the models describe (a change to a model without its migration fails
here)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Float

from bot.storage.database import Database
from bot.storage.models import Base


def _differences(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": False})
    found = []
    for diff in compare_metadata(context, Base.metadata):
        modify = diff[0] if isinstance(diff, list) else diff
        if modify[0] == "modify_type" and isinstance(modify[-1], Float) and isinstance(modify[-2], Float):
            continue  # FLOAT and DOUBLE are one type to SQLite
        found.append(diff)
    return found


async def test_the_migrated_schema_is_the_models_schema(database: Database) -> None:
    async with database.engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
