"""The staff console in headless Chromium (Playwright's async API, Debian's Chromium) against `fangfei serve`, with
Telegram through the fake Bot API: a lock-out, the Today page's charts, the ledger's htmx filter, a status change
that reaches the Telegram reporter, a reveal that the admin then finds in the audit log, a township account that
cannot open another township's tip, a request without its CSRF token refused."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from bot import subscribers
from bot.services import Services
from tests.conftest import TEST_SECRET_KEY
from tests.console_support import NAME, PASSWORD, PHONE, add_staff, file_two_townships
from tests.fake_telegram import FakeTelegram
from tests.support import Server
from tests.test_browser import CHROMIUM, FLAGS

SHOTS = Path(__file__).resolve().parent / "artifacts"  # screenshots of the run (not kept in git)


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    assert shutil.which(CHROMIUM), "Chromium is missing: scripts/test installs it (apt-get install chromium)"
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        await browser.close()


def serve_with(db_env: dict[str, str], fake: FakeTelegram) -> Server:
    server = Server({**db_env, "FANGFEI_SECRET_KEY": TEST_SECRET_KEY, "FANGFEI_TELEGRAM__TOKEN": fake.token,
                     "FANGFEI_TELEGRAM__BASE_URL": fake.base_url, "FANGFEI_TELEGRAM__WEBHOOK_SECRET": "console-secret",
                     # warnings to the elderly wait for the morning in quiet hours: not in this test
                     "FANGFEI_BROADCASTS__QUIET_AUDIENCES": "[]"})
    server.env["FANGFEI_TELEGRAM__WEBHOOK_URL"] = f"{server.base}/telegram/webhook"
    server.start()
    return server


async def sign_in(page: Page, base: str, name: str, password: str = PASSWORD) -> None:
    await page.goto(base + "/console/")
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_staff_work_the_ledger_in_a_browser(chromium: Browser, services: Services,
                                                  db_env: dict[str, str]) -> None:
    await add_staff(services, ("王科长", "admin", []), ("李办理", "handler", []), ("赵干事", "staff", ["hekou"]),
                    ("孙干事", "staff", ["hekou"]))
    town, river = await file_two_townships(services)
    with FakeTelegram() as fake:
        server = serve_with(db_env, fake)
        try:
            context = await chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            page = await context.new_page()
            base = server.base

            # five wrong passwords lock the account; the right one is refused until the lock-out passes
            for _ in range(services.settings.console.max_failed_logins):
                await sign_in(page, base, "赵干事", "wrong password")
            await expect(page.locator(".problem")).to_contain_text("已锁定")
            await sign_in(page, base, "赵干事")
            await expect(page.locator(".problem")).to_contain_text("已锁定")

            # a handler: the Today page and its charts
            await sign_in(page, base, "李办理")
            await expect(page.locator("#account")).to_contain_text("李办理")
            await expect(page.locator("#new-count")).to_have_text("2")
            await expect(page.locator("canvas.chart[data-rendered='1']")).to_have_count(4)
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "console-today.png"), full_page=True)

            # the ledger, filtered by htmx without a page load
            await page.click("nav >> text=线索台账")
            await expect(page.locator("#tip-total")).to_have_text("2")
            await page.select_option("select[name=township]", "河口乡")
            await expect(page.locator("#tip-total")).to_have_text("1")
            await expect(page.locator("table.tips")).to_contain_text(river)
            assert "township=" in page.url  # the filter is in the address, to share or reload

            # a status change reaches the Telegram reporter through the outbox
            await page.goto(f"{base}/console/tips/{town}")
            status_form = page.locator("form", has=page.locator("input[name=action][value=status]"))
            await status_form.locator("select[name=status]").select_option("verifying")
            await status_form.locator("input[name=note]").fill("已派人去现场")
            await status_form.locator("button").click()
            await expect(page.locator(".notice")).to_contain_text("已通知举报人")
            await expect(page.locator("#tip-status")).to_have_text("核查中")
            told = await fake.wait_for(lambda: fake.texts_to(1009), timeout=30)
            assert any(town in t and "正在核查" in t for t in told)

            # the reveal, with its reason
            await page.fill("form.reveal input[name=reason]", "需要电话核实细节")
            await page.click("form.reveal button")
            await expect(page.locator("#identity-name")).to_have_text(NAME)
            await expect(page.locator("#identity-contact")).to_have_text(PHONE)

            # a change without the session's CSRF token is refused
            refused = await page.request.post(f"{base}/console/tips/{town}", form={"action": "note", "note": "x"})
            assert refused.status == 403
            await page.click("text=退出")
            await expect(page.locator("input[name=username]")).to_be_visible()

            # the admin finds the reveal in the audit log
            await sign_in(page, base, "王科长")
            await page.goto(f"{base}/console/audit?action=reveal-identity")
            row = page.locator("table.audit tbody tr").first
            await expect(row).to_contain_text("console:李办理")
            await expect(row).to_contain_text(town)
            await expect(row).to_contain_text("需要电话核实细节")
            await page.click("text=退出")

            # a township account: another township's tip is not there, even by its address
            await sign_in(page, base, "孙干事")
            await page.goto(f"{base}/console/tips")
            await expect(page.locator("table.tips")).to_contain_text(river)
            await expect(page.locator("table.tips")).not_to_contain_text(town)
            answer = await page.goto(f"{base}/console/tips/{town}")
            assert answer is not None and answer.status == 404
            await expect(page.locator("body")).not_to_contain_text("养老公寓")
            await context.close()
        finally:
            log = server.stop()
    assert "Traceback" not in log
    assert PHONE not in log and NAME not in log and PASSWORD not in log


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_warning_and_a_quiz_campaign_from_the_console(chromium: Browser, services: Services,
                                                             db_env: dict[str, str]) -> None:
    await add_staff(services, ("钱审批", "approver", []), ("孙审批", "approver", []), ("王科长", "admin", []))
    chats = (7001, 7002, 7003)
    async with services.db.transaction() as session:
        for chat in chats:
            await subscribers.subscribe(session, "telegram", str(chat), "elderly", "河口乡", "河口村")
        await subscribers.subscribe(session, "telegram", "7009", "elderly", "城关镇", "南关村")
    with FakeTelegram() as fake:
        server = serve_with(db_env, fake)
        try:
            context = await chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            page = await context.new_page()
            page.on("dialog", lambda dialog: dialog.accept())
            base = server.base
            await sign_in(page, base, "钱审批")
            await page.goto(f"{base}/console/warnings")
            await page.fill("textarea[name=text]", "近期有人在河口乡借“养老项目”收钱。请不要交钱，可以打12345问。")
            await page.check("input[name=township][value=hekou]")
            await expect(page.locator("#reachable")).to_have_text("3")  # the live count (htmx), 河口乡 only
            await page.click("text=保存草稿，等另一位审批")
            await expect(page.locator("#warning-state")).to_have_text("待批准")
            await expect(page.locator(".actions")).to_contain_text("需要另一位审批人批准")
            csrf = await page.locator("input[name=csrf]").first.input_value()
            own = await page.request.post(page.url, form={"action": "approve", "csrf": csrf})
            assert own.status == 400 and "起草人不能批准" in await own.text()
            warning = page.url
            await page.click("text=退出")

            await sign_in(page, base, "孙审批")
            await page.goto(warning)
            await page.click("text=批准发送")
            await expect(page.locator("#percent")).to_have_text("100", timeout=30_000)  # polled while sending
            await expect(page.locator("#sent")).to_have_text("3")
            for chat in chats:
                assert any("养老项目" in t for t in fake.texts_to(chat))
            assert fake.texts_to(7009) == []  # another township
            await page.screenshot(path=str(SHOTS / "console-warning.png"), full_page=True)
            await page.click("text=退出")

            # a campaign made in the console, answered on the quiz page, read back with its charts
            await sign_in(page, base, "王科长")
            await page.goto(f"{base}/console/quizzes")
            await page.fill("input[name=name]", "河口乡老年人防非答题")
            await page.fill("input[name=slug]", "hekou-elderly")
            await page.fill("input[name=questions]", "3")
            await page.check("input[name=open]")
            await page.get_by_role("button", name="新建", exact=True).click()
            await expect(page.locator("#quiz-state")).to_have_text("进行中")
            resident = await chromium.new_context(viewport={"width": 390, "height": 780}, is_mobile=True,
                                                  locale="zh-CN")
            phone = await resident.new_page()
            await phone.goto(f"{base}/quiz/hekou-elderly")
            await phone.select_option("#township", label="河口乡")
            await phone.select_option("#village", label="李家村")
            await phone.fill("#name", "李大爷")
            await phone.get_by_role("button", name="开始答题").click()
            for n in range(1, 4):
                await expect(phone.locator("#progress")).to_have_text(f"第 {n} 题 / 共 3 题")
                await phone.locator("#options button").first.click()
                await expect(phone.locator("#explanation")).to_be_visible()
                await phone.locator("#next").click()
            await expect(phone.locator("#score")).to_contain_text("共 3 题")
            await resident.close()
            await page.reload()
            await expect(page.locator("#players")).to_have_text("1")
            await expect(page.locator("table.regions tr[data-region='hekou-lijia']")).to_contain_text("1")
            await expect(page.locator("canvas.chart[data-rendered='1']")).to_have_count(4)
            await expect(page.locator("table.board")).to_contain_text("李*爷")
            await page.screenshot(path=str(SHOTS / "console-quiz.png"), full_page=True)
            for path in ("/console/", "/console/tips", "/console/quizzes/hekou-elderly", warning):
                await page.set_viewport_size({"width": 768, "height": 1024})  # a tablet: nothing off the side
                await page.goto(path if path.startswith("http") else base + path)
                assert await page.evaluate("document.documentElement.scrollWidth") <= 768, path
            await context.close()
        finally:
            log = server.stop()
    assert "Traceback" not in log
