"""The quiz page in headless Chromium posing as WeChat's browser (its User-Agent, and a stand-in for the
WeixinJSBridge that WeChat's app injects): the silent sign-in through the fake WeChat's authorize page, the vendored
JS-SDK's wx.config with a signature checked here with hashlib, the share card it sets, and an attempt played as the
signed-in resident."""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from bot.config import Settings
from bot.services import Services
from tests import test_browser
from tests.fake_wechat import FakeWeChat
from tests.quiz_wechat_support import WECHAT_UA, wechat_settings
from tests.test_quiz_page import SLUG, start_site

browser = test_browser.browser
# WeChat's app gives its pages a native bridge; this one records what the JS-SDK asks of it and says "ok"
BRIDGE = """
window.__bridge = [];
window.WeixinJSBridge = {
  invoke: function (name, args, done) {
    window.__bridge.push([name, JSON.parse(JSON.stringify(args || {}))]);
    if (done) setTimeout(function () { done({err_msg: name + ":ok"}); }, 0);
  },
  on: function () {}, call: function () {}
};
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def wechat_site(settings: Settings, shared: Services) -> Iterator[tuple[str, FakeWeChat]]:
    with FakeWeChat() as fake:
        fake.resident = "o-browser-Kx3"
        port = _free_port()
        fake.oauth_domain = "127.0.0.1"  # the account's 网页授权域名
        server = start_site(wechat_settings(settings, fake, f"http://127.0.0.1:{port}"), shared, port)
        yield server.url, fake
        server.stop()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_inside_wechat_a_resident_signs_in_plays_and_gets_the_share_card(
        browser: Browser, wechat_site: tuple[str, FakeWeChat]) -> None:
    base, fake = wechat_site
    context = browser.new_context(user_agent=WECHAT_UA, viewport={"width": 390, "height": 780}, is_mobile=True,
                                  has_touch=True, locale="zh-CN")
    context.add_init_script(BRIDGE)
    page = context.new_page()
    page.goto(f"{base}/quiz/{SLUG}")
    expect(page.locator("h1")).to_have_text("2026 老年人防非知识答题")
    # there and back, once (the browser keeps the authorize address's #wechat_redirect, as WeChat's may)
    assert page.url.split("#")[0] == f"{base}/quiz/{SLUG}" and len(fake.authorizations) == 1
    assert "MicroMessenger" in fake.authorizations[0]["user_agent"]
    assert {c["name"] for c in context.cookies()} == {"ff_quiz_wx"}
    expect(page.locator("#signin-failed")).to_have_count(0)

    # polled from here: wait_for_function polls with eval inside the page, which the page's CSP rightly forbids
    shared = "window.__bridge.some(c => c[0] === 'updateAppMessageShareData')"
    for _ in range(100):
        if page.evaluate(shared):
            break
        page.wait_for_timeout(100)
    assert page.evaluate(shared), "the share card was never set"
    calls = dict(page.evaluate("window.__bridge"))
    verify = calls["preVerifyJSAPI"]
    ticket = fake.tickets_issued[-1]
    signed = (f"jsapi_ticket={ticket}&noncestr={verify['verifyNonceStr']}&timestamp={verify['verifyTimestamp']}"
              f"&url={page.url.split('#')[0]}")
    assert verify["verifyAppId"] == fake.appid and verify["verifySignType"] == "sha1"
    assert verify["verifySignature"] == hashlib.sha1(signed.encode()).hexdigest()
    assert set(verify["verifyJsApiList"]) == {"updateAppMessageShareData", "updateTimelineShareData"}
    card = calls["updateAppMessageShareData"]
    assert card["title"] == "2026 老年人防非知识答题" and card["link"] == f"{base}/quiz/{SLUG}"
    assert calls["updateTimelineShareData"]["link"] == f"{base}/quiz/{SLUG}"

    page.select_option("#township", label="青山镇")
    page.select_option("#village", label="石桥村")
    page.get_by_role("button", name="开始答题").click()
    for n in range(1, 6):
        expect(page.locator("#progress")).to_have_text(f"第 {n} 题 / 共 5 题")
        page.locator("#options button").filter(has_text=re.compile("^[A-C]\\. 能$")).click()
        expect(page.locator("#verdict")).to_have_text("答对了！")
        page.locator("#next").click()
    expect(page.locator("#score")).to_have_text("答对 5 题，共 5 题")
    assert {c["name"] for c in context.cookies()} == {"ff_quiz_wx"}  # played as the WeChat resident

    # WeChat failing: the page says so in one line, plays on, and the address loses its mark for forwarding
    fake.fail("sns/oauth2/access_token", status=503, times=2)
    context.clear_cookies()
    page.goto(f"{base}/quiz/{SLUG}")
    expect(page.locator("#signin-failed")).to_contain_text("没能用微信认出您")
    page.wait_for_url(re.compile(f"^{re.escape(base)}/quiz/{SLUG}(#.*)?$"))  # ?wx=failed dropped by quiz-wechat.js
    page.get_by_role("button", name="开始答题").click()
    expect(page.locator("#progress")).to_have_text("第 1 题 / 共 5 题")
    assert "ff_quiz" in {c["name"] for c in context.cookies()}
    fake.assert_no_violations()
    context.close()
