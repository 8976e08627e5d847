"""Shared fixtures: settings on a throw-away database (SQLite always, PostgreSQL when configured), services, engine."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import make_url, text
from telegram import Bot

from bot.config import Settings, load_settings
from bot.engine import Engine
from bot.services import Services
from bot.storage.database import Database
from bot.storage.models import Base
from bot.vault import Vault
from bot.web.app import create_app
from tests.fake_telegram import FakeTelegram
from tests.support import FANGFEI, Server

# Staff passwords are hashed with argon2id at a tenth of production's cost in tests (every console test signs in,
# and the processes tests start inherit this): the hashing code is the same, only the parameters differ, and
# tests/test_console.py checks the production defaults themselves.
for _name, _value in {"TIME_COST": "1", "MEMORY_KIB": "4096", "PARALLELISM": "1"}.items():
    os.environ.setdefault(f"FANGFEI_CONSOLE__PASSWORD_{_name}", _value)


def _worker_database(url: str | None) -> str | None:
    """Under pytest-xdist each worker gets a database of its own on the server (`test_gw0`, …), made when missing:
    the tests empty their tables, so workers must not share one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker:
        return url
    main = make_url(url)
    name = f"{main.database}_{worker}"

    async def create() -> None:
        conn = await asyncpg.connect(main.set(drivername="postgresql").render_as_string(False))
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return main.set(database=name).render_as_string(False)


PG_URL = _worker_database(os.environ.get("FANGFEI_TEST_DATABASE_URL"))
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
ROOT = Path(__file__).resolve().parent.parent
TEST_SECRET_KEY = "test-only-secret-key"


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return load_settings(ROOT / "config.yaml").model_copy(update={"secret_key": TEST_SECRET_KEY})


@pytest.fixture(scope="session")
def shared(base_settings: Settings) -> Services:
    """Knowledge, index and risk checker are read-only: build them once for the whole run."""
    return Services.create(base_settings, db=Database("sqlite+aiosqlite://"))


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        assert PG_URL
        return PG_URL
    return f"sqlite+aiosqlite:///{tmp_path / 'fangfei.db'}"


@pytest.fixture
def settings(base_settings: Settings, db_url: str) -> Settings:
    return base_settings.model_copy(update={"database": base_settings.database.model_copy(update={"url": db_url})})


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    db = Database(settings.database.url)
    if not db.is_sqlite:  # one shared server: start every test from empty tables
        await db.upgrade(Vault(TEST_SECRET_KEY))  # (a schema older than the code seals what is left in it)
        async with db.engine.begin() as conn:
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    await db.upgrade()
    yield db
    await db.close()


@pytest.fixture
def services(settings: Settings, database: Database, shared: Services) -> Services:
    return Services(settings=settings, db=database, kb=shared.kb, index=shared.index, risk=shared.risk,
                    vault=shared.vault)


@pytest.fixture
def engine(services: Services) -> Engine:
    return Engine(services)


@pytest.fixture
def server(db_url: str) -> Iterator[Server]:
    if not db_url.startswith("sqlite"):
        subprocess.run([FANGFEI, "db", "upgrade"], cwd=ROOT, env={**os.environ, "FANGFEI_DATABASE__URL": db_url},
                       check=True, capture_output=True)
    srv = Server({"FANGFEI_DATABASE__URL": db_url})
    srv.start()
    yield srv
    if srv.proc and srv.proc.poll() is None:
        srv.stop()


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    """A fake Bot API server (modules that need a running TelegramChannel define their own `telegram`)."""
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def bot(telegram: FakeTelegram) -> AsyncIterator[Bot]:
    """python-telegram-bot's real Bot, talking to the fake server."""
    async with Bot(telegram.token, base_url=telegram.base_url, base_file_url=telegram.base_file_url) as b:
        yield b


@pytest.fixture
async def web(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    """The web chat API in process (`POST /api/chat` through httpx's ASGI transport)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(engine)),
                                 base_url="http://fangfei.test") as c:
        yield c


@pytest.fixture
def db_env(db_url: str, database: Database) -> dict[str, str]:
    """The environment that points a `fangfei` process at the test database (migrated and, on PostgreSQL, emptied
    by the `database` fixture first)."""
    return {"FANGFEI_DATABASE__URL": db_url}
