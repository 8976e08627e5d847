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

from bot.services import Services
from tests.conftest import TEST_SECRET_KEY
from tests.console_support import NAME, PASSWORD, PHONE, add_staff, file_two_townships
from tests.fake_telegram import FakeTelegram
from tests.support import Server
from tests.test_browser import CHROMIUM, FLAGS

SHOTS = Path(__file__).resolve().parent.parent / "data" / "screenshots"


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    assert shutil.which(CHROMIUM), "Chromium is missing: scripts/test installs it (apt-get install chromium)"
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        await browser.close()


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
        server = Server({**db_env, "FANGFEI_SECRET_KEY": TEST_SECRET_KEY, "FANGFEI_TELEGRAM__TOKEN": fake.token,
                         "FANGFEI_TELEGRAM__BASE_URL": fake.base_url,
                         "FANGFEI_TELEGRAM__WEBHOOK_SECRET": "console-secret"})
        server.env["FANGFEI_TELEGRAM__WEBHOOK_URL"] = f"{server.base}/telegram/webhook"
        server.start()
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
