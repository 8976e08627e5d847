"""Tests of the fake WeChat Official Account API and the fake WeCom group robot, driven by plain httpx."""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fake_wechat import DEFAULT_APPID, DEFAULT_SECRET, FakeWeChat, FakeWeComRobot

USER = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
OTHER = "oUpF8uN3kZyBgD2x0c8T7qWnJrXa"
T0 = 1_700_000_000.0


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeChat]:
    async with FakeWeChat() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


@pytest.fixture
async def robot() -> AsyncIterator[FakeWeComRobot]:
    async with FakeWeComRobot() as robot:
        yield robot


async def get_token(http: httpx.AsyncClient, fake: FakeWeChat, **overrides: Any) -> dict[str, Any]:
    body = {"grant_type": "client_credential", "appid": fake.appid, "secret": fake.secret, "force_refresh": False,
            **overrides}
    response = await http.post(f"{fake.api_base_url}/cgi-bin/stable_token", json=body)
    assert response.status_code == 200
    return response.json()


async def send_text(http: httpx.AsyncClient, fake: FakeWeChat, token: str, content: str,
                    touser: str = USER) -> dict[str, Any]:
    response = await http.post(f"{fake.api_base_url}/cgi-bin/message/custom/send", params={"access_token": token},
                               json={"touser": touser, "msgtype": "text", "text": {"content": content}})
    assert response.status_code == 200
    return response.json()


async def post(http: httpx.AsyncClient, fake: FakeWeChat, path: str, token: str, body: Any) -> dict[str, Any]:
    response = await http.post(f"{fake.api_base_url}{path}", params={"access_token": token}, json=body)
    assert response.status_code == 200
    return response.json()


# --------------------------------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------------------------------


async def test_stable_token_is_shared_until_it_expires(fake: FakeWeChat, http: httpx.AsyncClient) -> None:
    fake.set_clock(T0)
    first = await get_token(http, fake)
    assert set(first) == {"access_token", "expires_in"} and first["expires_in"] == 7200
    assert len(first["access_token"]) > 100
    fake.advance(1000)
    second = await get_token(http, fake)
    assert second == {"access_token": first["access_token"], "expires_in": 6200}  # normal mode: same token
    assert fake.token_requests == 2 and fake.tokens_issued == [first["access_token"]]
    assert fake.access_token == first["access_token"]

    fake.user_wrote(USER)
    assert await send_text(http, fake, first["access_token"], "你好") == {"errcode": 0, "errmsg": "ok"}

    fake.advance(6200)  # the token's lifetime is over
    assert await send_text(http, fake, first["access_token"], "还在吗") == {
        "errcode": 42001, "errmsg": "access_token expired"}
    assert fake.access_token is None
    third = await get_token(http, fake)
    assert third["access_token"] != first["access_token"] and third["expires_in"] == 7200
    fake.assert_no_violations()


async def test_expire_token_and_force_refresh(fake: FakeWeChat, http: httpx.AsyncClient) -> None:
    fake.user_wrote(USER)
    old = (await get_token(http, fake))["access_token"]
    fake.expire_token()
    assert (await send_text(http, fake, old, "x"))["errcode"] == 42001
    new = (await get_token(http, fake))["access_token"]
    assert new != old
    assert (await send_text(http, fake, new, "x"))["errcode"] == 0

    forced = (await get_token(http, fake, force_refresh=True))["access_token"]
    assert forced not in (old, new)
    assert (await send_text(http, fake, new, "x"))["errcode"] == 40001  # superseded
    assert (await send_text(http, fake, forced, "x"))["errcode"] == 0
    assert (await send_text(http, fake, "made-up-token", "x"))["errcode"] == 40001
    assert fake.token_requests == 3 and len(fake.tokens_issued) == 3
    assert [c["errcode"] for c in fake.calls_to("custom/send")] == [42001, 0, 40001, 0, 40001]
    fake.assert_no_violations()


async def test_several_clients_share_one_token(fake: FakeWeChat) -> None:
    async def one_process() -> str:
        async with httpx.AsyncClient(timeout=5) as client:  # like a separate process: its own connection pool
            return (await get_token(client, fake))["access_token"]

    tokens = await asyncio.gather(*(one_process() for _ in range(5)))
    assert len(set(tokens)) == 1
    assert fake.token_requests == 5 and len(fake.tokens_issued) == 1


async def test_bad_credentials(fake: FakeWeChat, http: httpx.AsyncClient) -> None:
    assert (await get_token(http, fake, appid="wx0000000000000000"))["errcode"] == 40013
    assert await get_token(http, fake, secret="wrong") == {"errcode": 40125, "errmsg": "invalid appsecret"}
    assert (await get_token(http, fake, grant_type="password"))["errcode"] == 40002
    assert fake.tokens_issued == [] and fake.token_requests == 3
    assert fake.violations == []  # wrong credentials are configuration, not malformed requests
    fake.user_wrote(USER)
    response = await http.post(f"{fake.api_base_url}/cgi-bin/message/custom/send",
                               json={"touser": USER, "msgtype": "text", "text": {"content": "x"}})
    assert response.json()["errcode"] == 41001
    assert [v["errcode"] for v in fake.violations] == [41001]


async def test_classic_token_endpoint_keeps_the_old_token_for_five_minutes(fake: FakeWeChat,
                                                                           http: httpx.AsyncClient) -> None:
    fake.set_clock(T0)
    fake.user_wrote(USER)
    params = {"grant_type": "client_credential", "appid": DEFAULT_APPID, "secret": DEFAULT_SECRET}
    first = (await http.get(f"{fake.api_base_url}/cgi-bin/token", params=params)).json()
    second = (await http.get(f"{fake.api_base_url}/cgi-bin/token", params=params)).json()
    assert first["access_token"] != second["access_token"] and second["expires_in"] == 7200
    assert (await send_text(http, fake, first["access_token"], "x"))["errcode"] == 0
    fake.advance(301)
    assert (await send_text(http, fake, first["access_token"], "x"))["errcode"] == 40001
    assert (await send_text(http, fake, second["access_token"], "x"))["errcode"] == 0
    assert fake.access_token is None  # stable tokens are separate


async def test_stable_token_must_be_a_json_post(fake: FakeWeChat, http: httpx.AsyncClient) -> None:
    response = await http.get(f"{fake.api_base_url}/cgi-bin/stable_token")
    assert response.json()["errcode"] == 43002
    response = await http.post(f"{fake.api_base_url}/cgi-bin/stable_token", content=b"grant_type=client_credential")
    assert response.json()["errcode"] == 47001
    assert [v["kind"] for v in fake.violations] == ["wrong_http_method", "bad_json"]
    with pytest.raises(AssertionError, match="would have rejected"):
        fake.assert_no_violations()


# --------------------------------------------------------------------------------------------------------------------
# Customer-service messages
# --------------------------------------------------------------------------------------------------------------------


async def test_48_hour_window(fake: FakeWeChat, http: httpx.AsyncClient) -> None:
    fake.set_clock(T0)
    token = (await get_token(http, fake))["access_token"]
    assert await send_text(http, fake, token, "您好") == {
        "errcode": 45015, "errmsg": "response out of time limit or subscription is canceled"}

    fake.user_wrote(USER, at=T0 - 48 * 3600 + 10)  # wrote almost 48 hours ago
    assert (await send_text(http, fake, token, "第一条"))["errcode"] == 0
    fake.advance(10)
    assert (await send_text(http, fake, token, "第二条"))["errcode"] == 45015
    assert fake.window_of(USER)["open"] is False

    fake.user_wrote(USER)  # the user writes again: a new window
    assert (await send_text(http, fake, token, "第三条"))["errcode"] == 0
    assert (await send_text(http, fake, token, "给别人", touser=OTHER))["errcode"] == 45015
    assert fake.texts_to(USER) == ["第一条", "第三条"]
    assert [s["time"] for s in fake.sent] == [T0, T0 + 10]
    fake.assert_no_violations()


async def test_quota_per_window() -> None:
    async with FakeWeChat(quota=3) as fake, httpx.AsyncClient(timeout=5) as http:
        token = (await get_token(http, fake))["access_token"]
        fake.user_wrote(USER)
        results = [(await send_text(http, fake, token, f"消息{i}"))["errcode"] for i in range(4)]
        assert results == [0, 0, 0, 45047]
        assert (await send_text(http, fake, token, "x"))["errmsg"] == "out of response count limit"
        assert fake.window_of(USER) | {"opened": 0, "until": 0} == {
            "opened": 0, "until": 0, "quota": 3, "used": 3, "remaining": 0, "open": True}
        fake.user_wrote(USER)  # a new message renews the window and the count
        assert (await send_text(http, fake, token, "再来"))["errcode"] == 0
        fake.user_wrote(OTHER, quota=1)
        assert (await send_text(http, fake, token, "a", touser=OTHER))["errcode"] == 0
        assert (await send_text(http, fake, token, "b", touser=OTHER))["errcode"] == 45047
        assert len(fake.sent) == 5
        fake.assert_no_violations()


async def test_content_limits_and_shapes(fake: FakeWeChat, http: httpx.AsyncClient) -> None:
    token = (await get_token(http, fake))["access_token"]
    fake.user_wrote(USER)
    exactly = "防" * 682 + "ab"  # 2046 + 2 = 2048 bytes
    assert (await send_text(http, fake, token, exactly))["errcode"] == 0
    assert await send_text(http, fake, token, exactly + "c") == {
        "errcode": 45002, "errmsg": "content size out of limit"}
    assert (await send_text(http, fake, token, ""))["errcode"] == 44004
    assert [(v["errcode"], v["kind"]) for v in fake.violations] == [(45002, "content_too_long"),
                                                                   (44004, "empty_content")]

    path = "/cgi-bin/message/custom/send"
    article = {"title": "防范非法集资", "description": "要点", "url": "https://example.org/a", "picurl": ""}
    news = {"touser": USER, "msgtype": "news", "news": {"articles": [article]}}
    assert (await post(http, fake, path, token, news))["errcode"] == 0
    news["news"]["articles"] = [article, article]
    assert (await post(http, fake, path, token, news))["errcode"] == 45008
    image = {"touser": USER, "msgtype": "image", "image": {"media_id": "MEDIA_1"}}
    assert (await post(http, fake, path, token, image))["errcode"] == 0
    assert (await post(http, fake, path, token, {"touser": USER, "msgtype": "sticker", "sticker": {}}))[
        "errcode"] == 40008
    assert [(s["msgtype"], s["content"]) for s in fake.sent] == [
        ("text", exactly), ("news", "防范非法集资"), ("image", "MEDIA_1")]
    assert fake.sent[1]["message"] == {**news, "news": {"articles": [article]}}
    assert fake.window_of(USER)["used"] == 3  # failed sends do not use the quota


async def test_typing(fake: FakeWeChat, http: httpx.AsyncClient) -> None:
    token = (await get_token(http, fake))["access_token"]
    body = {"touser": USER, "command": "Typing"}
    assert (await post(http, fake, "/cgi-bin/message/custom/typing", token, body))["errcode"] == 45015
    fake.user_wrote(USER)
    assert (await post(http, fake, "/cgi-bin/message/custom/typing", token, body))["errcode"] == 0
    assert [t["command"] for t in fake.typing] == ["Typing"]


# --------------------------------------------------------------------------------------------------------------------
# Menu
# --------------------------------------------------------------------------------------------------------------------

VALID_MENU: dict[str, Any] = {"button": [
    {"type": "click", "name": "今日提醒", "key": "TODAY"},
    {"name": "防非知识", "sub_button": [
        {"type": "view", "name": "非法集资的特征", "url": "https://example.org/features"},
        {"type": "click", "name": "测一测", "key": "QUIZ"},
        {"type": "miniprogram", "name": "小程序", "url": "https://example.org", "appid": "wx1", "pagepath": "p/i"},
    ]},
    {"type": "view", "name": "举报", "url": "http://example.org/report"},
]}


def menu_with(change: Any) -> dict[str, Any]:
    menu = copy.deepcopy(VALID_MENU)
    change(menu)
    return menu


INVALID_MENUS = {
    "no buttons": ({"button": []}, 40016),
    "four buttons": (menu_with(lambda m: m["button"].append({"type": "click", "name": "多", "key": "K"})), 40016),
    "top name 17 bytes": (menu_with(lambda m: m["button"][0].update(name="一二三四五六x")), 40018),
    "empty name": (menu_with(lambda m: m["button"][0].update(name="")), 40018),
    "bad type": (menu_with(lambda m: m["button"][0].update(type="klick")), 40017),
    "click without key": (menu_with(lambda m: m["button"][0].pop("key")), 40019),
    "view without url": (menu_with(lambda m: m["button"][2].pop("url")), 40020),
    "view with relative url": (menu_with(lambda m: m["button"][2].update(url="/report")), 40055),
    "six sub buttons": (menu_with(lambda m: m["button"][1]["sub_button"].extend(
        [{"type": "click", "name": f"子{i}", "key": f"S{i}"} for i in range(3)])), 40023),
    "sub name 61 bytes": (menu_with(lambda m: m["button"][1]["sub_button"][1].update(name="长" * 20 + "x")), 40025),
    "sub bad type": (menu_with(lambda m: m["button"][1]["sub_button"][1].update(type="link")), 40024),
    "sub click without key": (menu_with(lambda m: m["button"][1]["sub_button"][1].update(key="")), 40026),
    "sub key 129 bytes": (menu_with(lambda m: m["button"][1]["sub_button"][1].update(key="k" * 129)), 40026),
    "sub view url too long": (menu_with(
        lambda m: m["button"][1]["sub_button"][0].update(url="https://e.org/" + "a" * 1011)), 40027),
    "sub view url scheme": (menu_with(lambda m: m["button"][1]["sub_button"][0].update(url="ftp://e.org")), 40054),
    "miniprogram without appid": (menu_with(lambda m: m["button"][1]["sub_button"][2].pop("appid")), 47001),
}


async def test_menu_create_get_delete(fake: FakeWeChat, http: httpx.AsyncClient) -> None:
    token = (await get_token(http, fake))["access_token"]
    assert (await http.get(f"{fake.api_base_url}/cgi-bin/menu/get", params={"access_token": token})).json()[
        "errcode"] == 46003
    assert await post(http, fake, "/cgi-bin/menu/create", token, VALID_MENU) == {"errcode": 0, "errmsg": "ok"}
    assert fake.menu == VALID_MENU
    got = (await http.get(f"{fake.api_base_url}/cgi-bin/menu/get", params={"access_token": token})).json()
    assert got == {"menu": VALID_MENU}
    assert (await http.get(f"{fake.api_base_url}/cgi-bin/menu/delete", params={"access_token": token})).json()[
        "errcode"] == 0
    assert fake.menu is None
    fake.assert_no_violations()


@pytest.mark.parametrize("case", INVALID_MENUS)
async def test_menu_validation(fake: FakeWeChat, http: httpx.AsyncClient, case: str) -> None:
    menu, errcode = INVALID_MENUS[case]
    token = (await get_token(http, fake))["access_token"]
    answer = await post(http, fake, "/cgi-bin/menu/create", token, menu)
    assert answer["errcode"] == errcode, answer
    assert fake.menu is None
    [violation] = fake.violations
    assert violation["errcode"] == errcode and violation["kind"] == "menu" and violation["body"] == menu


def test_menu_name_limits_are_bytes_not_characters() -> None:
    with FakeWeChat() as fake:
        token = httpx.post(f"{fake.api_base_url}/cgi-bin/stable_token", json={
            "grant_type": "client_credential", "appid": fake.appid, "secret": fake.secret}).json()["access_token"]
        menu = {"button": [{"type": "click", "name": "五个汉字啊x", "key": "K"}]}  # 6 characters, 16 bytes
        url = f"{fake.api_base_url}/cgi-bin/menu/create"
        assert httpx.post(url, params={"access_token": token}, json=menu).json()["errcode"] == 0
        menu["button"][0]["name"] = "六个汉字啊啊"  # 6 characters, 18 bytes
        assert httpx.post(url, params={"access_token": token}, json=menu).json()["errcode"] == 40018


# --------------------------------------------------------------------------------------------------------------------
# Failure injection, waiting, lifecycle
# --------------------------------------------------------------------------------------------------------------------


async def test_injected_errcodes_and_statuses(fake: FakeWeChat, http: httpx.AsyncClient) -> None:
    fake.fail("stable_token", errcode=-1)
    assert await get_token(http, fake) == {"errcode": -1, "errmsg": "system error"}
    token = (await get_token(http, fake))["access_token"]
    fake.user_wrote(USER)

    fake.fail("/cgi-bin/message/custom/send", status=502, times=2)
    for _ in range(2):
        response = await http.post(f"{fake.api_base_url}/cgi-bin/message/custom/send",
                                   params={"access_token": token},
                                   json={"touser": USER, "msgtype": "text", "text": {"content": "x"}})
        assert response.status_code == 502 and "Bad Gateway" in response.text
    fake.fail("custom/send", errcode=45047)
    assert (await send_text(http, fake, token, "x"))["errcode"] == 45047
    fake.fail("custom/send", errcode=40001, errmsg="invalid credential")
    assert await send_text(http, fake, token, "x") == {"errcode": 40001, "errmsg": "invalid credential"}
    assert (await send_text(http, fake, token, "终于"))["errcode"] == 0

    fake.fail("*", errcode=-1, times=None)
    assert (await send_text(http, fake, token, "x"))["errcode"] == -1
    assert (await get_token(http, fake))["errcode"] == -1
    fake.clear_failures()
    assert (await send_text(http, fake, token, "恢复"))["errcode"] == 0

    assert fake.texts_to(USER) == ["终于", "恢复"]
    assert len(fake.injected) == 7 and fake.token_requests == 3  # injected failures count as requests too
    assert len(fake.tokens_issued) == 1
    assert [c["status"] for c in fake.calls_to("custom/send")][:2] == [502, 502]
    fake.assert_no_violations()


async def test_injected_hang(fake: FakeWeChat, http: httpx.AsyncClient) -> None:
    token = (await get_token(http, fake))["access_token"]
    fake.user_wrote(USER)
    fake.fail("custom/send", delay=0.8)
    with pytest.raises(httpx.ReadTimeout):
        await http.post(f"{fake.api_base_url}/cgi-bin/message/custom/send", params={"access_token": token},
                        json={"touser": USER, "msgtype": "text", "text": {"content": "慢"}}, timeout=0.3)
    assert (await send_text(http, fake, token, "快"))["errcode"] == 0
    # The hung request is still processed once its delay is over (as a slow server would do).
    sent = await fake.wait_sent(2, timeout=5)
    assert sorted(s["content"] for s in sent) == ["快", "慢"]


def test_stop_does_not_wait_for_a_hang() -> None:
    fake = FakeWeChat().start()
    fake.fail("stable_token", delay=60)
    box: dict[str, Any] = {}

    def call() -> None:
        try:
            box["status"] = httpx.post(f"{fake.api_base_url}/cgi-bin/stable_token", json={}, timeout=30).status_code
        except httpx.HTTPError as exc:
            box["error"] = exc

    thread = threading.Thread(target=call)
    thread.start()
    fake.wait_for(lambda: fake.injected, timeout=5)
    started = time.monotonic()
    fake.stop()
    thread.join(10)
    assert time.monotonic() - started < 5
    assert box.get("status") == 503 or "error" in box


async def test_wait_sent_async(fake: FakeWeChat, http: httpx.AsyncClient) -> None:
    token = (await get_token(http, fake))["access_token"]
    fake.user_wrote(USER)
    fake.user_wrote(OTHER)

    async def later() -> None:
        await asyncio.sleep(0.05)
        await send_text(http, fake, token, "一", touser=OTHER)
        await send_text(http, fake, token, "二")

    task = asyncio.create_task(later())
    [record] = await fake.wait_sent(1, touser=USER, timeout=5)
    assert record["content"] == "二" and record["touser"] == USER
    await task
    assert len(await fake.wait_calls(2, "custom/send")) == 2
    with pytest.raises(TimeoutError, match="3 sent message"):
        await fake.wait_sent(3, timeout=0.1)


def test_wait_sent_sync_and_restart() -> None:
    with FakeWeChat() as fake:
        token = httpx.post(f"{fake.api_base_url}/cgi-bin/stable_token", json={
            "grant_type": "client_credential", "appid": fake.appid, "secret": fake.secret}).json()["access_token"]
        fake.user_wrote(USER)

        def later() -> None:
            time.sleep(0.05)
            httpx.post(f"{fake.api_base_url}/cgi-bin/message/custom/send", params={"access_token": token},
                       json={"touser": USER, "msgtype": "text", "text": {"content": "同步"}})

        threading.Thread(target=later).start()
        assert fake.wait_sent(1, timeout=5)[0]["content"] == "同步"
        port = fake.port
    with fake:  # restarts on the same port; state is kept
        assert fake.port == port
        answer = httpx.post(f"{fake.api_base_url}/cgi-bin/message/custom/send", params={"access_token": token},
                            json={"touser": USER, "msgtype": "text", "text": {"content": "又来"}}).json()
        assert answer["errcode"] == 0 and fake.texts_to(USER) == ["同步", "又来"]


async def test_verbose_errors_and_unknown_paths(http: httpx.AsyncClient) -> None:
    async with FakeWeChat(verbose_errors=True) as fake:
        answer = await get_token(http, fake, secret="nope")
        assert answer["errcode"] == 40125 and answer["errmsg"].startswith("invalid appsecret rid: ")
        response = await http.post(f"{fake.api_base_url}/cgi-bin/user/info")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert [v["kind"] for v in fake.violations] == ["unknown_path"]
        ok = await http.post(f"{fake.api_base_url}/cgi-bin/stable_token", json={
            "grant_type": "client_credential", "appid": fake.appid, "secret": fake.secret})
        assert ok.headers["content-type"] == "application/json; encoding=utf-8"


def test_wechatpy_client_speaks_the_same_wire_format() -> None:
    from wechatpy import WeChatClient

    with FakeWeChat() as fake:
        token = httpx.post(f"{fake.api_base_url}/cgi-bin/stable_token", json={
            "grant_type": "client_credential", "appid": fake.appid, "secret": fake.secret}).json()["access_token"]
        client = WeChatClient(fake.appid, fake.secret, access_token=token, auto_retry=False, timeout=5)
        client.API_BASE_URL = f"{fake.api_base_url}/cgi-bin/"
        fake.user_wrote(USER)
        assert client.message.send_text(USER, "来自 wechatpy")["errcode"] == 0
        assert client.menu.create(VALID_MENU)["errcode"] == 0
        assert fake.texts_to(USER) == ["来自 wechatpy"] and fake.menu == VALID_MENU
        fake.assert_no_violations()


def test_web_sign_in_and_jsapi_ticket_in_wechatpys_wire_format() -> None:
    from wechatpy import WeChatClient
    from wechatpy.exceptions import WeChatOAuthException
    from wechatpy.oauth import WeChatOAuth

    with FakeWeChat() as fake:
        fake.resident = USER
        oauth = WeChatOAuth(fake.appid, fake.secret, "https://quiz.example/back?next=/quiz/a", state="abc123")
        oauth.OAUTH_BASE_URL, oauth.API_BASE_URL = f"{fake.api_base_url}/connect/", f"{fake.api_base_url}/"
        back = httpx.get(oauth.authorize_url.split("#")[0])
        assert back.status_code == 302 and back.headers["location"].startswith(
            "https://quiz.example/back?next=/quiz/a&code=")
        code = httpx.URL(back.headers["location"]).params["code"]
        assert back.headers["location"].endswith("&state=abc123")
        assert oauth.fetch_access_token(code)["openid"] == USER
        with pytest.raises(WeChatOAuthException) as used:
            oauth.fetch_access_token(code)
        assert used.value.errcode == 40163
        late = fake.issue_code(OTHER)
        fake.advance(301)
        with pytest.raises(WeChatOAuthException) as expired:
            oauth.fetch_access_token(late)
        assert expired.value.errcode == 40029
        fake.resident = None  # nobody allowed it: back without a code
        assert "code=" not in httpx.get(oauth.authorize_url.split("#")[0]).headers["location"]
        fake.assert_no_violations()
        wrong = WeChatOAuth("wx0000000000000000", fake.secret, "https://quiz.example/back")
        wrong.OAUTH_BASE_URL = f"{fake.api_base_url}/connect/"
        assert httpx.get(wrong.authorize_url.split("#")[0]).status_code == 200  # WeChat's error page
        assert [v["kind"] for v in fake.violations] == ["bad_authorize"]

        token = httpx.post(f"{fake.api_base_url}/cgi-bin/stable_token", json={
            "grant_type": "client_credential", "appid": fake.appid, "secret": fake.secret}).json()["access_token"]
        client = WeChatClient(fake.appid, fake.secret, access_token=token, auto_retry=False, timeout=5)
        client.API_BASE_URL = f"{fake.api_base_url}/cgi-bin/"
        ticket = client.jsapi.get_ticket()
        assert ticket["ticket"] == fake.jsapi_ticket and ticket["expires_in"] == 7200
        fake.expire_tickets()
        assert fake.jsapi_ticket is None and not fake.ticket_valid(ticket["ticket"])


# --------------------------------------------------------------------------------------------------------------------
# WeCom group robot
# --------------------------------------------------------------------------------------------------------------------


async def test_robot_text_and_markdown(robot: FakeWeComRobot, http: httpx.AsyncClient) -> None:
    assert robot.url.endswith(f"/cgi-bin/webhook/send?key={robot.key}")
    text = {"msgtype": "text", "text": {"content": "今日预警：2 条", "mentioned_list": ["wangqing", "@all"]}}
    assert (await http.post(robot.url, json=text)).json() == {"errcode": 0, "errmsg": "ok"}
    markdown = {"msgtype": "markdown", "markdown": {"content": "## 预警\n> <font color=\"warning\">高风险</font>"}}
    assert (await http.post(robot.url, json=markdown)).json()["errcode"] == 0
    assert robot.texts() == ["今日预警：2 条", markdown["markdown"]["content"]]
    assert robot.received[0]["mentioned_list"] == ["wangqing", "@all"]
    assert robot.received[1]["msgtype"] == "markdown" and robot.received[1]["message"] == markdown

    png = b"\x89PNG\r\n\x1a\nfake"
    image = {"msgtype": "image", "image": {"base64": base64.b64encode(png).decode(),
                                           "md5": hashlib.md5(png).hexdigest()}}
    assert (await http.post(robot.url, json=image)).json()["errcode"] == 0
    news = {"msgtype": "news", "news": {"articles": [{"title": "案例", "url": "https://example.org/c"}]}}
    assert (await http.post(robot.url, json=news)).json()["errcode"] == 0
    robot.assert_no_violations()


async def test_robot_rejections(robot: FakeWeComRobot, http: httpx.AsyncClient) -> None:
    wrong = robot.url.replace(robot.key, "00000000-0000-0000-0000-000000000000")
    ok = {"msgtype": "text", "text": {"content": "x"}}
    assert (await http.post(wrong, json=ok)).json() == {"errcode": 93000, "errmsg": "invalid webhook url"}
    assert robot.violations == []

    text = "警" * 682 + "ab"  # 2048 bytes
    assert (await http.post(robot.url, json={"msgtype": "text", "text": {"content": text}})).json()["errcode"] == 0
    answer = (await http.post(robot.url, json={"msgtype": "text", "text": {"content": text + "!"}})).json()
    assert answer["errcode"] == 40058
    md = "#" * 4096
    assert (await http.post(robot.url, json={"msgtype": "markdown", "markdown": {"content": md}})).json()[
        "errcode"] == 0
    assert (await http.post(robot.url, json={"msgtype": "markdown", "markdown": {"content": md + "#"}})).json()[
        "errcode"] == 40058
    assert (await http.post(robot.url, json={"msgtype": "text", "text": {"content": ""}})).json()["errcode"] == 44004
    assert (await http.post(robot.url, json={"msgtype": "link", "link": {}})).json()["errcode"] == 40008
    bad_mentions = {"msgtype": "text", "text": {"content": "x", "mentioned_list": "wangqing"}}
    assert (await http.post(robot.url, json=bad_mentions)).json()["errcode"] == 40058
    image = {"msgtype": "image", "image": {"base64": base64.b64encode(b"png").decode(), "md5": "0" * 32}}
    assert (await http.post(robot.url, json=image)).json()["errcode"] == 40058
    assert (await http.post(robot.url, content=b"{not json")).json()["errcode"] == 47001
    assert [v["kind"] for v in robot.violations] == [
        "content_too_long", "content_too_long", "empty_content", "bad_msgtype", "bad_mentions", "bad_image",
        "bad_json"]
    assert len(robot.received) == 2


async def test_robot_rate_limit(robot: FakeWeComRobot, http: httpx.AsyncClient) -> None:
    robot.set_clock(T0)
    other = robot.add_key("11111111-2222-3333-4444-555555555555")

    async def send(url: str, i: int) -> int:
        return (await http.post(url, json={"msgtype": "text", "text": {"content": f"第{i}条"}})).json()["errcode"]

    codes = [await send(robot.url, i) for i in range(21)]
    assert codes == [0] * 20 + [45009]
    assert await send(other, 0) == 0  # every robot has its own limit
    [violation] = robot.rate_violations
    assert violation["count"] == 21 and violation["window"] == 60.0 and violation["key"] == robot.key
    last = robot.calls[-2]
    assert last["errcode"] == 45009 and last["errmsg"] == "api freq out of limit"

    robot.advance(59.9)
    assert await send(robot.url, 21) == 45009
    robot.advance(0.2)  # the first messages are now more than 60 s old
    assert await send(robot.url, 22) == 0
    assert len(robot.texts(robot.key)) == 21 and len(robot.texts(other.rsplit("=", 1)[1])) == 1
    with pytest.raises(AssertionError, match="rate limit"):
        robot.assert_no_violations()


async def test_robot_rate_limit_not_enforced(http: httpx.AsyncClient) -> None:
    async with FakeWeComRobot(key="k-1", rate_limit=(3, 60.0), enforce_rate_limit=False) as robot:
        for i in range(5):
            answer = (await http.post(robot.url, json={"msgtype": "text", "text": {"content": str(i)}})).json()
            assert answer["errcode"] == 0
        assert len(robot.received) == 5 and [r["count"] for r in robot.rate_violations] == [4, 5]


async def test_robot_failures(robot: FakeWeComRobot, http: httpx.AsyncClient) -> None:
    body = {"msgtype": "text", "text": {"content": "x"}}
    robot.fail(2, errcode=-1)
    assert [(await http.post(robot.url, json=body)).json()["errcode"] for _ in range(3)] == [-1, -1, 0]
    robot.fail(status=500)
    response = await http.post(robot.url, json=body)
    assert response.status_code == 500
    robot.fail(errcode=45009)
    assert (await http.post(robot.url, json=body)).json() == {"errcode": 45009, "errmsg": "api freq out of limit"}
    robot.fail(delay=0.8)
    with pytest.raises(httpx.ReadTimeout):
        await http.post(robot.url, json=body, timeout=0.2)
    assert len(await robot.wait_received(2, timeout=5)) == 2  # the slow one arrives eventually
    assert len(robot.injected) == 5 and robot.rate_violations == []
    robot.assert_no_violations()


def test_robot_sync_wait_and_verbose_errors() -> None:
    with FakeWeComRobot(verbose_errors=True) as robot:
        def later() -> None:
            time.sleep(0.05)
            httpx.post(robot.url, json={"msgtype": "markdown", "markdown": {"content": "**同步**"}})

        threading.Thread(target=later).start()
        [record] = robot.wait_received(1, timeout=5)
        assert record["content"] == "**同步**" and record["key"] == robot.key
        answer = httpx.post(robot.url.replace(robot.key, "nope"), json={}).json()
        assert answer["errcode"] == 93000 and answer["errmsg"].startswith("invalid webhook url, hint: [")
        with pytest.raises(TimeoutError):
            robot.wait_received(2, timeout=0.1)
