"""The web chat page in headless Chromium on a phone-sized screen: a resident taps and types through a check."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support import Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Chromium is missing: scripts/test installs it (apt-get install chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 780}, is_mobile=True, has_touch=True,
                                  locale="zh-CN")
    yield context.new_page()
    context.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_resident_checks_an_offer_on_a_phone(page: Page, server: Server, tmp_path: Path) -> None:
    page.goto(server.base + "/")
    expect(page.locator(".msg.bot").first).to_contain_text("防范非法集资小助手")
    page.get_by_role("button", name="风险自测").click()
    expect(page.locator(".msg.bot").last).to_contain_text("怎么说的")
    page.locator("#text").fill("他说投一千每天返十块，拉人还有奖励")
    page.locator("#text").press("Enter")
    expect(page.locator(".msg.me").last).to_have_text("他说投一千每天返十块，拉人还有奖励")
    expect(page.locator(".msg.bot", has_text="风险").last).to_be_visible()
    expect(page.get_by_role("button", name="我要举报").last).to_be_visible()
    # fits a phone: nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(tmp_path / "web-chat.png"))

    # a reload keeps the same resident (localStorage) and a stale button expires politely
    old_button = page.get_by_role("button", name="再测一个").last
    page.get_by_role("button", name="回主菜单").last.click()
    expect(page.locator(".msg.bot").last).to_contain_text("请选择")
    old_button.click()
    expect(page.locator(".msg.bot").last).to_contain_text("过期")
