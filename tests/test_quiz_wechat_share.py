"""The quiz page's share card inside WeChat: wx.config's signature for the page's exact address (checked here with
hashlib against the fake WeChat's ticket), one jsapi_ticket shared by processes and refreshed when it runs out or
the access token does, and sharing that changes nothing."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from bot.channels.wechat_api import TICKET_NAME, WeChatApi
from bot.engine import Engine
from bot.services import Services
from bot.storage.database import Database
from bot.storage.models import ApiToken, Base, utcnow
from quizzes import campaigns
from tests.fake_wechat import FakeWeChat
from tests.quiz_wechat_support import PUBLIC, WECHAT_UA, wechat_app, wechat_services, wechat_settings
from tests.test_quiz_api import BANK, VILLAGE

SLUG = "elderly-2026"
SHARE = f"/api/quiz/{SLUG}/wechat-share"


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeChat]:
    async with FakeWeChat() as f:
        yield f


@pytest.fixture
async def site_services(engine: Engine, fake: FakeWeChat) -> Services:
    made = wechat_services(engine.services, wechat_settings(engine.services.settings, fake))
    made.quiz_questions = list(BANK)
    async with made.db.transaction() as session:
        await campaigns.create(session, slug=SLUG, name="2026 老年人防非知识答题", audience="elderly", questions=5,
                               attempts_per_day=2, open_now=True)
    return made


@pytest.fixture
async def api(site_services: Services) -> AsyncIterator[WeChatApi]:
    made = WeChatApi(site_services.settings.wechat, site_services.db, timeout=1.0)
    yield made
    await made.close()


def expected(ticket: str, card: dict[str, Any], url: str) -> str:
    """WeChat's rule, written out here rather than taken from the code under test."""
    text = f"jsapi_ticket={ticket}&noncestr={card['nonceStr']}&timestamp={card['timestamp']}&url={url}"
    return hashlib.sha1(text.encode()).hexdigest()


async def _rows(db: Database) -> dict[str, int]:
    async with db.session() as session:
        return {t.name: int(await session.scalar(select(func.count()).select_from(t)) or 0)
                for t in Base.metadata.sorted_tables if t.name != "api_tokens"}


async def test_the_card_is_signed_for_the_page_and_sharing_changes_nothing(
        site_services: Services, api: WeChatApi, fake: FakeWeChat) -> None:
    app = wechat_app(site_services, api)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC,
                                 headers={"User-Agent": WECHAT_UA}) as phone:
        for _ in range(2):
            assert (await phone.post(f"/api/quiz/{SLUG}/attempts", json={"region": VILLAGE})).status_code == 201
        before = await _rows(site_services.db)
        for url in (f"{PUBLIC}/quiz/{SLUG}", f"{PUBLIC}/quiz/{SLUG}?from=singlemessage&isappinstalled=0"):
            res = await phone.get(SHARE, params={"url": url})
            assert res.status_code == 200 and res.headers["cache-control"] == "no-store"
            card = res.json()
            ticket = fake.tickets_issued[-1]
            assert fake.ticket_valid(ticket) and card["signature"] == expected(ticket, card, url)
            assert card["appId"] == fake.appid and len(card["nonceStr"]) >= 16
            assert card["title"] == "2026 老年人防非知识答题" and card["link"] == f"{PUBLIC}/quiz/{SLUG}"
            for word in ("分享", "转发", "奖", "机会", "红包", "积分"):  # nothing offered for a share (诱导分享)
                assert word not in card["desc"]
            assert card["imgUrl"] == f"{PUBLIC}/static/quiz-card.png"
        assert (await phone.get("/static/quiz-card.png")).headers["content-type"] == "image/png"
        assert len(fake.calls_to("ticket/getticket")) == 1  # cached
        for bad in ("https://evil.example/quiz/elderly-2026", f"{PUBLIC}/quiz/{SLUG}x", f"{PUBLIC}/quiz/other",
                    f"{PUBLIC}/quiz/{SLUG}#top", f"{PUBLIC}/quiz/{SLUG}?" + "a" * 1100, ""):
            assert (await phone.get(SHARE, params={"url": bad})).status_code == 400
        assert (await phone.get("/api/quiz/nothing-here/wechat-share", params={"url": PUBLIC})).status_code == 404

        # sharing gives nothing: no row written, no attempt more
        assert await _rows(site_services.db) == before
        assert (await phone.post(f"/api/quiz/{SLUG}/attempts", json={"region": VILLAGE})).status_code == 429

        async with site_services.db.transaction() as session:  # the ticket runs out while WeChat is down
            await session.execute(update(ApiToken).where(ApiToken.name == TICKET_NAME).values(expires_at=utcnow()))
        fake.fail("ticket/getticket", status=503, times=3)
        down = await phone.get(SHARE, params={"url": f"{PUBLIC}/quiz/{SLUG}"})
        assert down.status_code == 503 and "error" in down.json()
        assert (await phone.get(f"/quiz/{SLUG}?wx=failed")).status_code == 200  # the page itself is unaffected
    fake.assert_no_violations()


async def _stale(db: Database, left: timedelta = timedelta(0)) -> None:
    async with db.transaction() as session:
        await session.execute(update(ApiToken).where(ApiToken.name == TICKET_NAME)
                              .values(expires_at=utcnow() + left))


async def test_processes_share_one_ticket_and_refresh_it(site_services: Services, api: WeChatApi,
                                                         fake: FakeWeChat) -> None:
    tickets = set(await asyncio.gather(*(api.jsapi_ticket() for _ in range(10))))
    assert tickets == {fake.tickets_issued[0]} and len(fake.calls_to("ticket/getticket")) == 1
    assert fake.token_requests == 1

    await _stale(site_services.db, timedelta(minutes=4))  # inside the 5-minute margin: replaced before it is used
    renewed = await api.jsapi_ticket()
    assert renewed == fake.tickets_issued[1] and await api.jsapi_ticket() == renewed
    assert len(fake.calls_to("ticket/getticket")) == 2

    fake.expire_token()  # the access token runs out too: 42001, refreshed once, the ticket fetched again
    await _stale(site_services.db)
    assert await api.jsapi_ticket() == fake.tickets_issued[2]
    assert [c["errcode"] for c in fake.calls_to("ticket/getticket")][2:] == [42001, 0]
    assert fake.token_requests == 2
    fake.fail("ticket/getticket", errcode=40001)  # a token another process replaced
    await _stale(site_services.db)
    assert await api.jsapi_ticket() == fake.tickets_issued[3] and fake.token_requests == 3

    if site_services.db.is_sqlite:
        return  # (one process per SQLite file; within it the lock above makes one fetch)
    # two processes (each its own pool and lock) find the ticket run out at once: one asks WeChat, one waits
    other_db = Database(site_services.settings.database.url)
    other = WeChatApi(site_services.settings.wechat, other_db)
    try:
        await _stale(site_services.db)
        calls = len(fake.calls_to("ticket/getticket"))
        fake.fail("ticket/getticket", delay=0.3)  # a slow WeChat widens the race
        both = await asyncio.gather(api.jsapi_ticket(), other.jsapi_ticket())
        assert both[0] == both[1] == fake.tickets_issued[-1]
        assert len(fake.calls_to("ticket/getticket")) == calls + 1
    finally:
        await other.close()
        await other_db.close()
    fake.assert_no_violations()
