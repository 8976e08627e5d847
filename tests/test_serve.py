"""`fangfei serve` as a real process over real HTTP: health, page, chat, concurrency, and a restart mid-flow."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.fake_telegram import FakeTelegram
from tests.support import FANGFEI, ROOT, Server


def chat(server: Server, user: str, text: str) -> list[dict]:
    res = httpx.post(server.base + "/api/chat", json={"user": user, "text": text}, timeout=10)
    assert res.status_code == 200, res.text
    return res.json()["replies"]


def test_serve_answers_and_survives_a_restart_mid_conversation(server: Server) -> None:
    page = httpx.get(server.base + "/")
    assert page.status_code == 200 and "防范非法集资小助手" in page.text
    replies = chat(server, "serve-1", "/start")
    check = next(o["value"] for r in replies for o in r["options"] if o["label"] == "风险自测")
    replies = chat(server, "serve-1", check)
    assert "怎么说的" in replies[0]["text"]
    log = server.stop()
    assert "telegram: off" in log  # no token: Telegram is simply off, and says so once
    assert "风险自测" not in log and "serve-1" not in log  # no message text or user ids in the INFO log
    server.start()
    replies = chat(server, "serve-1", "交三千会员费，平台帮我还清五万网贷")
    assert "风险" in replies[0]["text"]


def test_serve_handles_concurrent_residents(server: Server) -> None:
    async def one(client: httpx.AsyncClient, n: int) -> str:
        res = await client.post("/api/chat", json={"user": f"crowd-{n % 10}", "text": "消费全返是真的吗"})
        assert res.status_code == 200
        return res.json()["replies"][0]["text"]

    async def crowd() -> list[str]:
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
            return await asyncio.gather(*(one(client, n) for n in range(60)))

    answers = asyncio.run(crowd())
    assert len(answers) == 60 and all("消费全返" in a for a in answers)


@pytest.mark.parametrize("url", ["sqlite+aiosqlite:////proc/no-such-place/fangfei.db",
                                 "postgresql+asyncpg://postgres@127.0.0.1:1/none"])
def test_unreachable_database_stops_with_one_clear_line(url: str) -> None:
    proc = subprocess.run([FANGFEI, "serve"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "FANGFEI_DATABASE__URL": url})
    assert proc.returncode == 2
    assert proc.stderr.startswith("cannot open the database") and "Traceback" not in proc.stderr


def test_serve_runs_telegram_beside_the_web_chat(tmp_path: Path) -> None:
    with FakeTelegram() as fake:
        srv = Server({"FANGFEI_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'tg.db'}",
                      "FANGFEI_TELEGRAM__TOKEN": fake.token, "FANGFEI_TELEGRAM__BASE_URL": fake.base_url})
        srv.start()
        try:
            fake.wait_for(lambda: fake.calls_to("getUpdates"), timeout=20)
            fake.user_message(777, "消费全返是真的吗")
            fake.wait_sent(1, chat_id=777, timeout=20)
            assert "消费全返" in fake.messages_to(777)[0]["plain_text"]
            assert chat(srv, "web-1", "消费全返是真的吗")[0]["text"].startswith("【")  # the web chat still serves
        finally:
            log = srv.stop()
        assert "telegram: long polling" in log and fake.token not in log
        fake.assert_no_violations()


def test_serve_is_a_wechat_backend_with_the_four_settings(tmp_path: Path) -> None:
    from tests.wechat_client import AES_KEY, APP_ID, TOKEN, WeChatServer, text_xml

    srv = Server({"FANGFEI_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'wx.db'}",
                  "FANGFEI_WECHAT__TOKEN": TOKEN, "FANGFEI_WECHAT__ENCODING_AES_KEY": AES_KEY,
                  "FANGFEI_WECHAT__APP_ID": APP_ID, "FANGFEI_WECHAT__APP_SECRET": "not-used-here"})
    srv.start()
    try:
        async def conversation() -> list[str]:
            async with httpx.AsyncClient(base_url=srv.base, timeout=10) as client:
                wechat = WeChatServer(client, safe=True)
                first = await wechat.say("o-serve", "你好")
                second = wechat.reply_text(await wechat.post(text_xml("o-serve", "2")))
                forged = await wechat.post(text_xml("o-serve", "1"), forged=True)
                return [first, second, str(forged.status_code)]

        first, second, forged = asyncio.run(conversation())
        assert "回复 2：风险自测" in first and "怎么说的" in second and forged == "403"
    finally:
        log = srv.stop()
    assert "wechat: on at /wechat (safe mode)" in log and AES_KEY not in log and "o-serve" not in log


def test_a_tip_filed_on_the_web_reaches_staff_who_take_it(tmp_path: Path) -> None:
    """Through `fangfei serve`: the outbox worker announces a new tip to the Telegram staff chat and the WeCom
    robot; a staff member's press of 认领 in the staff chat assigns the tip to them."""
    from tests.fake_wechat import FakeWeComRobot

    staff, staff_chat = 8008, -9009
    with FakeTelegram() as fake, FakeWeComRobot() as robot:
        fake.add_chat(staff_chat, "supergroup", title="处非办")
        srv = Server({"FANGFEI_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'tips.db'}",
                      "FANGFEI_SECRET_KEY": "serve-test-key",
                      "FANGFEI_TELEGRAM__TOKEN": fake.token, "FANGFEI_TELEGRAM__BASE_URL": fake.base_url,
                      "FANGFEI_TELEGRAM__STAFF_CHAT_ID": str(staff_chat),
                      "FANGFEI_TELEGRAM__STAFF": f'[{{"id": {staff}, "role": "staff"}}]',
                      "FANGFEI_WECOM__ROBOT_WEBHOOK_URL": robot.url})
        srv.start()
        try:
            replies: list[dict] = chat(srv, "web-tipster", "我要举报")
            for answer in ("有人在镇上办讲座卖养老理财，说每年返百分之十五", "跳过", "跳过", "跳过", "跳过", "匿名",
                           "确认提交"):
                options = {o["label"]: o["value"] for r in replies for o in r["options"]}
                replies = chat(srv, "web-tipster", options.get(answer, answer))
            found = re.search(r"FF-\d{4}-\d{6}", " ".join(r["text"] for r in replies))
            assert found is not None
            receipt = found.group(0)
            robot.wait_received(1, timeout=20)
            fake.wait_sent(1, chat_id=staff_chat, timeout=20)
            alert = fake.messages_to(staff_chat)[0]
            assert receipt in alert["plain_text"] and "web-tipster" not in alert["plain_text"]
            assert receipt in robot.received[0]["content"]
            fake.press(staff_chat, "认领", user_id=staff)
            fake.wait_sent(2, chat_id=staff_chat, timeout=20)
            assert "认领" in fake.messages_to(staff_chat)[-1]["plain_text"]
        finally:
            log = srv.stop()
        assert "web-tipster" not in log and "养老理财" not in log
        shown = subprocess.run([FANGFEI, "tips", "show", receipt], cwd=ROOT, capture_output=True, text=True,
                               env={**srv.env}, timeout=60)
        assert shown.returncode == 0 and f"telegram:{staff}" in shown.stdout, shown.stdout + shown.stderr
        fake.assert_no_violations()
