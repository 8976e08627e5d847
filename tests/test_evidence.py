"""Evidence files fetched from the platforms and kept sealed, through real parts: the database fixtures, the outbox
dispatcher, a real python-telegram-bot `Bot` against the fake Bot API, and the WeChat API client's token against
the fake WeChat API over HTTP."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from telegram import Bot

from bot.channels.wechat_api import WeChatApi
from bot.config import WeChatSettings
from bot.outbox import Dispatcher, Sender
from bot.services import Services
from bot.storage.models import OutboxMessage, Tip, TipEvidence
from bot.tips import evidence, ledger
from bot.tips.ledger import Evidence, Report
from tests.fake_telegram import FakeTelegram
from tests.fake_wechat import MEDIA_LIFETIME, FakeWeChat

RESIDENT = 7700123
MAX_BYTES = 64 * 1024
MARKER = "借条 王小明 身份证 3301".encode()  # what a photo of a document could show
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + MARKER + bytes(range(256)) * 8 + b"\xff\xd9"
PDF = b"%PDF-1.4\n" + MARKER + b"\n%%EOF\n"


@pytest.fixture
async def wechat() -> AsyncIterator[FakeWeChat]:
    async with FakeWeChat() as fake:
        yield fake


@pytest.fixture
async def api(wechat: FakeWeChat, services: Services) -> AsyncIterator[WeChatApi]:
    settings = WeChatSettings(token="t", app_id=wechat.appid, app_secret=wechat.secret,
                              api_base_url=wechat.api_base_url)
    client = WeChatApi(settings, services.db)
    yield client
    await client.close()


def fetchers(services: Services, bot: Bot | None = None, api: WeChatApi | None = None,
             max_bytes: int = MAX_BYTES) -> dict[str, Sender]:
    senders: dict[str, Sender] = {}
    if bot is not None:
        senders["fetch-telegram"] = evidence.telegram_fetcher(bot, services.db, services.vault, max_bytes)
    if api is not None:
        senders["fetch-wechat"] = evidence.wechat_fetcher(api.settings.api_base_url, api.token, services.db,
                                                          services.vault, max_bytes, http=api.http)
    return senders


async def file_tip(services: Services, channel: str, items: list[Evidence]) -> Tip:
    """A tip with evidence, its fetches queued in the same transaction (as the report flow does)."""
    postgres = not services.db.is_sqlite
    report = Report(what="有人拉我们投资养老公寓，每年返15%，还给了借条。", anonymous=True, evidence=items)
    async with services.db.transaction() as session:
        tip = await ledger.file(session, services.vault, channel, str(RESIDENT), report, None, postgres)
        await evidence.queue_fetches(session, tip, postgres)
    return tip


async def kept(services: Services, tip: Tip) -> list[tuple[bytes | None, str | None, int | None]]:
    async with services.db.session() as session:
        rows = await ledger.evidence(session, tip)
        return [(await evidence.content(session, services.vault, e), e.content_type, e.size) for e in rows]


async def fetch_rows(services: Services) -> dict[str, OutboxMessage]:
    async with services.db.session() as session:
        rows = await session.scalars(select(OutboxMessage).where(OutboxMessage.dedup.like("evidence:%")))
        return {r.dedup: r for r in rows}


async def states(services: Services, tip: Tip) -> list[str]:
    async with services.db.session() as session:
        rows = await ledger.evidence(session, tip)
        found = await evidence.fetch_states(session, rows)
        return [found[e.id] for e in rows]


def database_files(services: Services) -> bytes:
    """Every byte SQLite keeps on disk for this database (the main file and its write-ahead log)."""
    path = Path(str(services.db.url.database))
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


async def test_telegram_evidence_is_fetched_once_and_kept_sealed(services: Services, telegram: FakeTelegram,
                                                                 bot: Bot) -> None:
    if not services.db.is_sqlite:
        pytest.skip("reads the SQLite file")
    telegram.photo(RESIDENT, "photo-1", content=JPEG, queue=False)
    telegram.add_file("doc-1", PDF, "documents/file_1.pdf")
    tip = await file_tip(services, "telegram", [Evidence("image", "photo-1"),
                                                Evidence("file", "doc-1", name="借条.pdf", size=len(PDF))])
    assert await states(services, tip) == ["fetching", "fetching"]

    dispatcher = Dispatcher(services.db, fetchers(services, bot=bot))
    assert await dispatcher.run_once() == 2
    assert await kept(services, tip) == [(JPEG, "image/jpeg", len(JPEG)), (PDF, "application/pdf", len(PDF))]
    assert await states(services, tip) == ["kept", "kept"]

    stored = database_files(services)
    assert stored and MARKER not in stored and JPEG[:64] not in stored and PDF not in stored
    assert base64.b64encode(JPEG)[:64] not in stored

    # fetching again downloads nothing and stores nothing twice
    assert len(telegram.calls_to("getFile")) == 2
    async with services.db.transaction() as session:
        assert await evidence.queue_fetches(session, tip, postgres=False) == 0
    assert await dispatcher.run_once() == 0
    rows = await fetch_rows(services)
    again = await fetchers(services, bot=bot)["fetch-telegram"](rows["evidence:1"].target, {})
    assert again.kind == "sent" and len(telegram.calls_to("getFile")) == 2
    assert len(rows) == 2 and {r.status for r in rows.values()} == {"sent"}
    assert await kept(services, tip) == [(JPEG, "image/jpeg", len(JPEG)), (PDF, "application/pdf", len(PDF))]
    telegram.assert_no_violations()


async def test_telegram_evidence_that_is_gone_or_too_large_fails_without_retries(
        services: Services, telegram: FakeTelegram, bot: Bot) -> None:
    telegram.add_file("big-1", b"\0" * (MAX_BYTES + 1), "documents/big.zip")
    tip = await file_tip(services, "telegram", [Evidence("file", "big-1"), Evidence("image", "never-uploaded")])
    dispatcher = Dispatcher(services.db, fetchers(services, bot=bot), base_backoff=0)
    assert await dispatcher.run_once() == 2
    assert await dispatcher.run_once() == 0  # nothing left to retry
    assert await kept(services, tip) == [(None, None, None), (None, None, None)]
    assert [(r.status, r.attempts) for r in (await fetch_rows(services)).values()] == [("failed", 1), ("failed", 1)]
    too_big, gone = await states(services, tip)
    assert too_big == f"failed: too large: {MAX_BYTES + 1} bytes, {MAX_BYTES} allowed"
    assert gone == "failed: BadRequest: Invalid file_id"


async def test_wechat_media_is_fetched_with_the_shared_token_and_an_unknown_media_id_fails_once(
        services: Services, wechat: FakeWeChat, api: WeChatApi) -> None:
    wechat.add_media("media-1", JPEG)
    wechat.add_media("video-1", PDF * 3, "video/mp4", video=True)
    tip = await file_tip(services, "wechat", [Evidence("image", "media-1"), Evidence("file", "video-1"),
                                              Evidence("image", "media-unknown")])
    stale = await api.token()
    wechat.expire_token()  # the cached token has expired: refreshed once, then the fetch goes through

    dispatcher = Dispatcher(services.db, fetchers(services, api=api), base_backoff=0)
    assert await dispatcher.run_once() == 3
    assert await dispatcher.run_once() == 0
    assert await kept(services, tip) == [(JPEG, "image/jpeg", len(JPEG)), (PDF * 3, "video/mp4", len(PDF) * 3),
                                         (None, None, None)]
    assert await states(services, tip) == ["kept", "kept", "failed: errcode 40007"]
    assert wechat.access_token != stale and len(wechat.tokens_issued) == 2
    unknown = [c for c in wechat.calls_to("media/get") if c["query"].get("media_id") == "media-unknown"]
    assert [c["errcode"] for c in unknown] == [40007]  # asked once, never again
    assert all(c["query"].get("access_token") for c in wechat.calls_to("media/get"))
    wechat.assert_no_violations()


async def test_wechat_fetches_retry_server_errors_and_refuse_expired_or_too_large_media(
        services: Services, wechat: FakeWeChat, api: WeChatApi) -> None:
    wechat.add_media("old-1", JPEG)
    wechat.advance(MEDIA_LIFETIME + 60)  # WeChat deleted it: we were too late
    wechat.add_media("media-2", JPEG)
    wechat.add_media("big-2", b"\0" * (MAX_BYTES + 1), "image/png")
    tip = await file_tip(services, "wechat", [Evidence("image", "old-1"), Evidence("image", "media-2"),
                                              Evidence("image", "big-2")])
    wechat.fail("media/get", status=502, times=1)
    dispatcher = Dispatcher(services.db, fetchers(services, api=api), base_backoff=0)
    assert await dispatcher.run_once() == 3
    assert (await states(services, tip))[0] == "fetching (last try: HTTP 502)"  # the first one met the 502
    assert await dispatcher.run_once() == 1
    assert await dispatcher.run_once() == 0
    assert await states(services, tip) == ["failed: errcode 40007", "kept",
                                           f"failed: too large: {MAX_BYTES + 1} bytes, {MAX_BYTES} allowed"]
    assert (await kept(services, tip))[1] == (JPEG, "image/jpeg", len(JPEG))
    wechat.assert_no_violations()


async def test_only_platform_tips_queue_fetches_and_each_file_once(services: Services) -> None:
    web = await file_tip(services, "web", [Evidence("image", "upload-1")])
    assert await states(services, web) == ["not queued"]
    tip = await file_tip(services, "wechat", [Evidence("image", "m-1"), Evidence("image", "m-2")])
    async with services.db.transaction() as session:
        assert await evidence.queue_fetches(session, tip, postgres=not services.db.is_sqlite) == 0
    rows = await fetch_rows(services)
    assert sorted(r.channel for r in rows.values()) == ["fetch-wechat", "fetch-wechat"]
    assert all(r.payload == {} and r.dedup == f"evidence:{r.target}" for r in rows.values())
    async with services.db.session() as session:
        ids = [e.id for e in await ledger.evidence(session, tip)]
        assert sorted(int(r.target) for r in rows.values()) == ids
        first = await session.get(TipEvidence, ids[0])
        assert first is not None and evidence.file_name(tip.receipt, 1, first) == f"{tip.receipt}-1"


async def test_staff_write_the_kept_files_out_with_the_cli_and_the_export_is_audited(
        services: Services, telegram: FakeTelegram, bot: Bot, tmp_path: Path) -> None:
    from sqlalchemy import func

    from bot.storage.models import AuditEntry
    from tests.conftest import TEST_SECRET_KEY
    from tests.test_tips_cli import fangfei

    telegram.photo(RESIDENT, "photo-9", content=JPEG, queue=False)
    tip = await file_tip(services, "telegram", [Evidence("image", "photo-9"), Evidence("image", "photo-missing")])
    env = {"FANGFEI_DATABASE__URL": services.settings.database.url, "FANGFEI_SECRET_KEY": TEST_SECRET_KEY}
    before = (await fangfei("tips", "show", tip.receipt, env=env)).stdout
    assert "fetching" in before
    await Dispatcher(services.db, fetchers(services, bot=bot)).run_once()
    shown = (await fangfei("tips", "show", tip.receipt, env=env)).stdout
    assert "kept" in shown and "failed" in shown  # the second file is gone from Telegram
    out = (await fangfei("tips", "evidence", tip.receipt, "--out", str(tmp_path / "files"), "--as", "李干事",
                         env=env)).stdout
    [written] = list((tmp_path / "files").iterdir())
    assert written.read_bytes() == JPEG and written.name == f"{tip.receipt}-1.jpg" and "not kept yet" in out
    async with services.db.session() as session:
        audits = await session.scalar(select(func.count(AuditEntry.id)).where(
            AuditEntry.action == "export-evidence", AuditEntry.subject == tip.receipt,
            AuditEntry.actor == "cli:李干事"))
    assert audits == 1
