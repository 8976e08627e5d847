"""The quiz page in headless Chromium (a phone and a desktop), served by the real app under uvicorn on a real database:
a village picked, a whole attempt answered, the explanations, the result, the certificate and its picture, the
standings; and what the page says when attempts are used up, time runs out, or a link is wrong."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import text

from bot.config import Settings
from bot.engine import Engine
from bot.services import Services
from bot.storage.database import Database
from bot.storage.models import Base
from bot.vault import Vault
from bot.web.app import create_app
from bot.web.quiz_page import certificate_png
from quizzes import campaigns
from tests import test_browser
from tests.conftest import BACKENDS, TEST_SECRET_KEY
from tests.fake_telegram import ThreadedServer
from tests.test_quiz_api import Q

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SLUG = "elderly-2026"
browser = test_browser.browser  # the browser tests' Chromium fixture (Debian's, with their flags)


# the right option is always 能 (its place is shuffled per attempt), so a test can answer right or wrong on purpose
BANK = [Q(f"elderly-{i:03d}", "elderly", f"cat-{i % 4}", f"第{i}题：有人说交钱就返利，能打{{hotline}}问一问吗？",
          ("能", "不能", "不知道"), "能", f"讲解{i}：拿不准就打{{hotline}}问。") for i in range(1, 21)]


def start_site(settings: Settings, shared: Services, port: int = 0) -> ThreadedServer:
    """The real app under uvicorn in a thread, its database and campaigns made in the server's own event loop."""
    db = Database(settings.database.url)
    services = Services(settings=settings, db=db, kb=shared.kb, index=shared.index, risk=shared.risk,
                        vault=shared.vault)
    services.quiz_questions = list(BANK)

    async def prepare() -> None:
        if not db.is_sqlite:  # one shared server: start from empty tables
            await db.upgrade(Vault(TEST_SECRET_KEY))
            async with db.engine.begin() as conn:
                await conn.execute(text(f"TRUNCATE {', '.join(t.name for t in Base.metadata.sorted_tables)} "
                                        "RESTART IDENTITY CASCADE"))
        await db.upgrade()
        async with db.transaction() as session:
            await campaigns.create(session, slug=SLUG, name="2026 老年人防非知识答题", audience="elderly",
                                   questions=5, attempts_per_day=2, pass_mark=60, open_now=True)
            await campaigns.create(session, slug="once", name="一次答题", audience="elderly", questions=1,
                                   attempts_per_day=1, open_now=True)
            await campaigns.create(session, slug="timed", name="限时答题", audience="elderly", questions=1,
                                   seconds_per_question=5, open_now=True)
            await campaigns.create(session, slug="later", name="还没开始的答题", audience="student")

    server = ThreadedServer(create_app(Engine(services)), port=port, on_start=prepare, on_stop=db.close)
    server.start(timeout=60)
    return server


@pytest.fixture
def site(settings: Settings, shared: Services) -> Iterator[str]:
    server = start_site(settings, shared)
    yield server.url
    server.stop()


def play(browser: Browser, base: str, width: int, height: int, name: str, shot: str) -> Page:
    mobile = width < 600
    context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=mobile, has_touch=mobile,
                                  locale="zh-CN")
    page = context.new_page()
    page.goto(f"{base}/quiz/{SLUG}")
    expect(page.locator("h1")).to_have_text("2026 老年人防非知识答题")
    page.select_option("#township", label="青山镇")
    page.select_option("#village", label="石桥村")
    page.fill("#name", name)
    page.get_by_role("button", name="开始答题").click()
    for n in range(1, 6):
        expect(page.locator("#progress")).to_have_text(f"第 {n} 题 / 共 5 题")
        expect(page.locator("#question-text")).to_contain_text("12345")  # the region's facts filled in
        right = n <= 3  # 3 of 5: exactly the pass mark
        page.locator("#options button").filter(has_text=re.compile("^[A-C]\\. 能$" if right else "^[A-C]\\. 不能$")
                                                ).click()
        expect(page.locator("#verdict")).to_have_text("答对了！" if right else "答错了")
        expect(page.locator("#explanation")).to_contain_text("讲解")
        expect(page.locator("#explanation")).to_contain_text("打12345问")
        expect(page.locator("#options button.right")).to_have_text(re.compile("能$"))
        if n == 1:
            body_px = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
            heights = page.evaluate("[...document.querySelectorAll('#options button, #next')]"
                                    ".map(b => b.getBoundingClientRect().height)")
            assert body_px >= 20 and min(heights) >= 48, (body_px, heights)
            assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing wider than the screen
            page.screenshot(path=str(ARTIFACTS / f"quiz-{shot}-question.png"), full_page=True)
        page.locator("#next").click()
    expect(page.locator("#score")).to_have_text("答对 3 题，共 5 题")
    expect(page.locator("#rank")).to_contain_text("排第")
    expect(page.locator("#passed")).to_contain_text("通过了")
    expect(page.locator("#my-region")).to_contain_text("青山镇 石桥村：已有")
    expect(page.locator("#players li").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=str(ARTIFACTS / f"quiz-{shot}-result.png"), full_page=True)
    return page


@pytest.mark.parametrize("db_url", BACKENDS, indirect=True)
def test_a_whole_attempt_on_a_phone_and_a_desktop(browser: Browser, site: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    phone = play(browser, site, 390, 780, "王小明", "phone")
    expect(phone.locator("#my-region")).to_contain_text("已有 1 人参加，参与率 0.2%")  # 1 of 640 adults
    expect(phone.locator("#players li").first).to_have_text("王*明（青山镇 石桥村）3 题")

    desk = play(browser, site, 1280, 800, "李四", "desktop")
    expect(desk.locator("#my-region")).to_contain_text("已有 2 人参加，参与率 0.3%")
    expect(desk.locator("#players")).to_contain_text("李*（青山镇 石桥村）3 题")

    # the certificate page: the name given, the campaign, the score, a code anyone can check
    desk.locator("#certificate-link").click()
    expect(desk.locator("#cert-name")).to_have_text("李四")
    expect(desk.locator("#cert-score")).to_have_text("成绩：3 / 5")
    expect(desk.locator("main")).to_contain_text("2026 老年人防非知识答题")
    code = desk.locator("#cert-code").inner_text()
    assert re.fullmatch(f"[{campaigns.CERTIFICATE_ALPHABET}]{{10}}", code)
    assert desk.url == f"{site}/quiz/{SLUG}/certificate/{code}"
    desk.screenshot(path=str(ARTIFACTS / "quiz-certificate.png"), full_page=True)
    png = httpx.get(f"{site}/quiz/{SLUG}/certificate/{code}.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(png.content))
    assert image.format == "PNG" and image.size == (1080, 760)
    (ARTIFACTS / "quiz-certificate-picture.png").write_bytes(png.content)
    # the code is the proof: another code, or the code under another campaign, is not found
    assert httpx.get(f"{site}/quiz/{SLUG}/certificate/ABCDEFGHJK").status_code == 404
    assert httpx.get(f"{site}/quiz/once/certificate/{code}").status_code == 404
    phone.context.close()
    desk.context.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_attempts_used_up_and_time_up_are_told(browser: Browser, site: str) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 780}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(f"{site}/quiz/once")
    page.get_by_role("button", name="开始答题").click()
    page.locator("#options button").first.click()
    page.locator("#next").click()
    expect(page.locator("#score")).to_contain_text("共 1 题")
    page.get_by_role("button", name="再答一次").click()
    page.get_by_role("button", name="开始答题").click()
    expect(page.locator("#message")).to_have_text("今天的 1 次答题机会已经用完了。明天再来吧，今天的成绩已经记下了。")
    expect(page.locator("#question")).to_be_hidden()

    # a question with a time limit: the countdown runs out, the page says so and goes on to the end
    page.goto(f"{site}/quiz/timed")
    page.get_by_role("button", name="开始答题").click()
    expect(page.locator("#timer")).to_contain_text("还剩")
    expect(page.locator("#timer")).to_have_text("时间到了", timeout=8000)
    expect(page.locator("#options button").first).to_be_disabled()
    expect(page.locator("#verdict")).to_have_text("时间到了", timeout=8000)
    expect(page.locator("#explanation")).to_contain_text("没有在时间内答完")
    page.locator("#next").click()
    expect(page.locator("#score")).to_have_text("答对 0 题，共 1 题")
    context.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_page_is_safe_and_plain(site: str) -> None:
    page = httpx.get(f"{site}/quiz/{SLUG}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'self' covers scripts
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert re.findall(r"<script[^>]*>", page.text) == ['<script src="../static/quiz.js">']  # no inline script
    assert " style=" not in page.text and "user-scalable" not in page.text  # pinch-zoom allowed
    for html in (page.text, httpx.get(f"{site}/quiz/later").text):
        assert not re.search(r'type="tel"|手机|电话号码|phone', html, re.IGNORECASE)
        assert "分享" not in html  # nothing asks to share, nothing is offered for it
    assert "分享" not in (Path(__file__).resolve().parent.parent / "bot/web/static/quiz.js").read_text()
    assert "没有开放" in httpx.get(f"{site}/quiz/later").text  # a draft campaign: said so, no start button
    assert "开始答题" not in httpx.get(f"{site}/quiz/later").text
    missing = httpx.get(f"{site}/quiz/no-such-quiz")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "没有找到这个答题活动" in missing.text
    assert httpx.get(f"{site}/quiz/no-such-quiz/certificate/ABC.png").status_code == 404


def test_pictures_fit_a_long_name() -> None:
    cert = campaigns.Certificate("ABCDEFGHJK", "很" * 32, "二〇二六年全县老年人防范非法集资知识有奖答题活动第一期",
                                 10, 10, "2026-12-02")
    image = Image.open(io.BytesIO(certificate_png(cert, "示例县")))
    # every line stays inside the frame: the outer 60 px on the left and right are only border and background
    left = image.crop((50, 60, 70, 700)).convert("L")
    assert left.getextrema()[0] > 200, "text ran into the left border"
