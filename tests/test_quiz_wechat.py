"""The quiz page inside WeChat, end to end against the fake WeChat on 127.0.0.1: the silent snsapi_base sign-in (one
player per openid across attempts, browsers and the WeChat chat; every failure leaves a working page), the share
card's signature checked here with hashlib, the shared jsapi_ticket, and no openid kept or logged."""

from __future__ import annotations

import logging
import time
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bot.channels.wechat_api import WeChatApi
from bot.config import ConfigError, load_settings
from bot.engine import Engine
from bot.logs import Redactor
from bot.services import Services
from bot.storage.models import QuizPlayer
from bot.web import wechat_signin
from bot.web.app import create_app
from quizzes import campaigns
from tests.fake_wechat import FakeWeChat
from tests.quiz_wechat_support import (
    PUBLIC,
    WeChatBrowser,
    plain_text_hits,
    query,
    wechat_app,
    wechat_services,
    wechat_settings,
)
from tests.test_quiz_api import BANK, VILLAGE

SLUG = "elderly-2026"
PAGE = f"/quiz/{SLUG}"
START = {"region": VILLAGE}
FAILED_LINE = "没能用微信认出您"


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeChat]:
    async with FakeWeChat() as f:
        f.resident = "o-resident-7Hk2pQ"
        yield f


@pytest.fixture
async def site(engine: Engine, fake: FakeWeChat) -> AsyncIterator[tuple[Services, WeChatApi, Any]]:
    services = wechat_services(engine.services, wechat_settings(engine.services.settings, fake))
    services.quiz_questions = list(BANK)
    async with services.db.transaction() as session:
        await campaigns.create(session, slug=SLUG, name="2026 老年人防非知识答题", audience="elderly", questions=5,
                               attempts_per_day=2, open_now=True)
    api = WeChatApi(services.settings.wechat, services.db, timeout=1.0)
    yield services, api, wechat_app(services, api)
    await api.close()


@pytest.fixture
async def browser(site: tuple[Services, WeChatApi, Any], fake: FakeWeChat) -> AsyncIterator[WeChatBrowser]:
    b = WeChatBrowser(site[2], fake)
    yield b
    await b.close()


async def test_a_resident_is_signed_in_silently_and_is_one_player(
        site: tuple[Services, WeChatApi, Any], browser: WeChatBrowser, fake: FakeWeChat,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    services, _, app = site
    first = await browser.app.get(PAGE)
    assert first.status_code == 302
    to = first.headers["location"]
    assert to.startswith(f"{fake.api_base_url}/connect/oauth2/authorize?") and to.endswith("#wechat_redirect")
    asked = query(to.split("#")[0])
    assert asked["appid"] == fake.appid and asked["scope"] == "snsapi_base" and asked["response_type"] == "code"
    assert asked["redirect_uri"] == f"{PUBLIC}/quiz-signin/wechat?next={PAGE}"
    assert len(asked["state"]) == 56 and asked["state"].isalnum()

    page, seen = await browser.open(PAGE)  # WeChat → our callback → the page, signed in
    assert page.status_code == 200 and FAILED_LINE not in page.text
    assert [u.split("?")[0] for u in seen] == [f"{PUBLIC}{PAGE}", f"{fake.api_base_url}/connect/oauth2/authorize",
                                               f"{PUBLIC}/quiz-signin/wechat", f"{PUBLIC}{PAGE}"]
    assert "static/quiz-wechat.js" in page.text and "static/jweixin-1.6.0.js" in page.text
    assert (await browser.app.get(PAGE)).status_code == 200  # signed in: no second trip to WeChat
    fake.assert_no_violations()

    for _ in range(2):  # two attempts a day, counted for this resident
        assert (await browser.app.post(f"/api/quiz/{SLUG}/attempts", json=START)).status_code == 201
    assert "ff_quiz" not in browser.app.cookies  # a WeChat player gets no browser cookie besides
    assert (await browser.app.post(f"/api/quiz/{SLUG}/attempts", json=START)).status_code == 429

    # another phone, or every cookie cleared: the same silent sign-in finds the same player
    other = WeChatBrowser(app, fake)
    try:
        page, _ = await other.open(PAGE)
        assert page.status_code == 200 and FAILED_LINE not in page.text
        assert (await other.app.post(f"/api/quiz/{SLUG}/attempts", json=START)).status_code == 429
        fake.resident = "o-neighbour-Zq81"
        neighbour = WeChatBrowser(app, fake)
        await neighbour.open(PAGE)
        assert (await neighbour.app.post(f"/api/quiz/{SLUG}/attempts", json=START)).status_code == 201
        await neighbour.close()
    finally:
        await other.close()

    logged = [(r.name, r.getMessage()) for r in caplog.records]  # (before the scan below, whose queries log it)
    assert not [m for _, m in logged if "o-resident-7Hk2pQ" in m or "o-neighbour-Zq81" in m]
    codes = [c["query"]["code"] for c in fake.calls_to("sns/oauth2/access_token")]
    assert len(codes) == 3 and not [m for n, m in logged if n.startswith("bot") and any(c in m for c in codes)]
    assert not [m for _, m in logged if any(c in Redactor([]).redact(m) for c in codes)]  # httpx's, once redacted
    async with services.db.session() as session:
        keys = set((await session.scalars(select(QuizPlayer.key))).all())
    # the stored key is the one the WeChat chat uses for this openid: one resident, one player
    assert keys == {campaigns.player_key(services.vault, "wechat", "o-resident-7Hk2pQ"),
                    campaigns.player_key(services.vault, "wechat", "o-neighbour-Zq81")}
    assert await plain_text_hits(services.db, SLUG) == ["quiz_campaigns.slug"]  # the scan finds what is there
    for openid in ("o-resident-7Hk2pQ", "o-neighbour-Zq81"):
        assert await plain_text_hits(services.db, openid) == []


async def test_every_failure_leaves_a_working_page_and_no_loop(
        site: tuple[Services, WeChatApi, Any], browser: WeChatBrowser, fake: FakeWeChat,
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def failed(expect_calls: int) -> httpx.Response:
        before = len(fake.calls_to("sns/oauth2/access_token"))
        page, seen = await browser.open(PAGE)
        assert page.status_code == 200 and FAILED_LINE in page.text, seen
        assert seen[-1] == f"{PUBLIC}{PAGE}?wx=failed"
        if expect_calls:
            await fake.wait_calls(before + expect_calls, "sns/oauth2/access_token")
        assert len(fake.calls_to("sns/oauth2/access_token")) - before == expect_calls
        again = await browser.app.get(f"{PAGE}?wx=failed")  # the marked page never goes to WeChat again
        assert again.status_code == 200
        res = await browser.app.post(f"/api/quiz/{SLUG}/attempts", json=START)  # plays as a browser player
        assert res.status_code in (201, 429) and "ff_quiz" in browser.app.cookies
        return page

    fake.fail("sns/oauth2/access_token", status=503, times=2)  # WeChat down (one retry, then given up)
    await failed(2)
    fake.fail("sns/oauth2/access_token", errcode=-1, times=2)  # "system busy" twice
    await failed(2)
    fake.fail("sns/oauth2/access_token", delay=2.0, status=503, times=2)  # no answer within the client's timeout
    await failed(2)
    fake.fail("sns/oauth2/access_token", errcode=40029)  # WeChat refuses the code
    await failed(1)
    fake.resident = None  # no code on the way back (a resident who refused, with snsapi_userinfo)
    await failed(0)
    fake.resident = "o-resident-7Hk2pQ"

    # a used code: the whole return replayed (its nonce cookie is gone), or the code put on a fresh sign-in
    start = await browser.app.get(PAGE)
    back = await browser.wechat.get(start.headers["location"].split("#")[0])
    callback = back.headers["location"]
    assert (await browser.app.get(callback)).headers["location"] == PAGE  # signed in
    assert (await browser.app.get(callback)).headers["location"] == f"{PAGE}?wx=failed"
    browser.drop_cookie("ff_quiz_wx")
    fresh = query((await browser.app.get(PAGE)).headers["location"].split("#")[0])["state"]
    used = callback.replace(query(callback)["state"], fresh)
    assert (await browser.app.get(used)).headers["location"] == f"{PAGE}?wx=failed"
    assert fake.calls_to("sns/oauth2/access_token")[-1]["errcode"] == 40163

    # a forged state, a state for another page, an expired one: refused before WeChat is asked
    calls = len(fake.calls_to("sns/oauth2/access_token"))
    state = query((await browser.app.get(PAGE)).headers["location"].split("#")[0])["state"]
    code = fake.issue_code("o-attacker-1")
    forged = state[:24] + ("0" if state[24] != "0" else "1") + state[25:]
    for bad in (f"next={PAGE}&code={code}&state={forged}", f"next=/quiz/other-quiz&code={code}&state={state}",
                f"next={PAGE}&code={code}&state=abc", f"next={PAGE}&code={code}"):
        assert (await browser.app.get(f"/quiz-signin/wechat?{bad}")).headers["location"].endswith("?wx=failed")
    later = time.time() + wechat_signin.STATE_SECONDS + 1
    monkeypatch.setattr(wechat_signin, "time", types.SimpleNamespace(time=lambda: later))
    assert (await browser.app.get(f"/quiz-signin/wechat?next={PAGE}&code={code}&state={state}")
            ).headers["location"].endswith("?wx=failed")
    assert len(fake.calls_to("sns/oauth2/access_token")) == calls
    for elsewhere in ("https://evil.example/quiz/x", "//evil.example", "/quiz/../admin", ""):
        res = await browser.app.get("/quiz-signin/wechat", params={"next": elsewhere, "code": code, "state": state})
        assert res.status_code == 400 and "location" not in res.headers and "重新点开" in res.text
    async with site[0].db.session() as session:
        assert await session.scalar(select(func.count()).select_from(QuizPlayer).where(
            QuizPlayer.key == campaigns.player_key(site[0].vault, "wechat", "o-attacker-1"))) == 0


async def test_outside_wechat_or_unconfigured_the_page_is_as_before(
        engine: Engine, site: tuple[Services, WeChatApi, Any], fake: FakeWeChat) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=site[2]), base_url=PUBLIC) as plain:
        page = await plain.get(PAGE)  # an ordinary browser
        assert page.status_code == 200 and "quiz-wechat.js" not in page.text and "jweixin" not in page.text
    off = wechat_services(engine.services, wechat_settings(engine.services.settings, fake, sign_in=False,
                                                           share=False))
    browser = WeChatBrowser(wechat_app(off, site[1]), fake)
    try:
        page = await browser.app.get(PAGE)  # inside WeChat, but the account is not set up for it
        assert page.status_code == 200 and "quiz-wechat.js" not in page.text
        assert (await browser.app.get("/quiz-signin/wechat")).status_code == 404
        assert (await browser.app.get(f"/api/quiz/{SLUG}/wechat-share")).status_code == 404
    finally:
        await browser.close()
    assert not fake.authorizations and not fake.calls


async def test_the_chat_and_the_page_are_one_player(site: tuple[Services, WeChatApi, Any], fake: FakeWeChat) -> None:
    """A resident who answered in the Official Account's chat has used one of the day's two attempts on the page."""
    from bot.channels.wechat import WeChatChannel
    from tests.test_wechat import wechat_settings as channel_settings
    from tests.wechat_client import WeChatServer

    services, api, _ = site
    engine = Engine(services)
    channel = WeChatChannel(engine, channel_settings(True))
    app = create_app(engine, channel.routes(), wechat_api=api)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://oa.test") as client:
        oa = WeChatServer(client, safe=True)
        for text in ("答题", "1", "3", "2"):  # 老年人, 青山镇, 石桥村
            reply = await oa.say(fake.resident or "", text)
        for _ in range(5):
            reply = await oa.say(fake.resident or "", "1")
        assert "答完了" in reply
    await channel.close()
    browser = WeChatBrowser(app, fake)
    try:
        await browser.open(PAGE)
        assert (await browser.app.post(f"/api/quiz/{SLUG}/attempts", json=START)).status_code == 201
        assert (await browser.app.post(f"/api/quiz/{SLUG}/attempts", json=START)).status_code == 429
    finally:
        await browser.close()


def test_sign_in_and_share_card_need_their_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = (Path(__file__).resolve().parent.parent / "config.yaml").read_text(encoding="utf-8")
    file = tmp_path / "config.yaml"
    monkeypatch.setenv("FANGFEI_WECHAT__APP_SECRET", "0123456789abcdef0123456789abcdef")
    file.write_text(config.replace("page_sign_in: false", "page_sign_in: true"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"need wechat\.app_id, FANGFEI_WECHAT__APP_SECRET and http\.public_url"):
        load_settings(file)
    monkeypatch.setenv("FANGFEI_WECHAT__APP_ID", "wx5f3c9a1d2b7e4c80")
    monkeypatch.setenv("FANGFEI_HTTP__PUBLIC_URL", "https://fangfei.example.gov.cn/quiz")
    with pytest.raises(ConfigError, match="a scheme and host only"):
        load_settings(file)
    monkeypatch.setenv("FANGFEI_HTTP__PUBLIC_URL", "https://fangfei.example.gov.cn/")
    assert load_settings(file).http.public_url == "https://fangfei.example.gov.cn"
