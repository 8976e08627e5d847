"""`fangfei serve` as a real process over real HTTP: health, page, chat, concurrency, and a restart mid-flow."""

from __future__ import annotations

import asyncio
import os
import re
import socket
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


@pytest.mark.parametrize(("url", "said"), [
    ("sqlite+aiosqlite:////proc/fangfei.db", "cannot open the database"),  # a folder nobody can write in
    ("sqlite+aiosqlite:////proc/no-such-place/fangfei.db", "database.url: the folder /proc/no-such-place does not"),
    ("postgresql+asyncpg://postgres@127.0.0.1:1/none", "cannot open the database")])
def test_unreachable_database_stops_with_one_clear_line(url: str, said: str) -> None:
    proc = subprocess.run([FANGFEI, "serve"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "FANGFEI_DATABASE__URL": url})
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert said in proc.stderr and "Traceback" not in proc.stderr


def test_serving_on_is_said_once_the_port_answers_and_a_busy_port_is_one_line(tmp_path: Path) -> None:
    env = {"FANGFEI_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'port.db'}"}
    srv = Server(env)
    srv.proc = subprocess.Popen([FANGFEI, "serve"], cwd=ROOT, env=srv.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    assert srv.proc.stdout is not None
    for line in srv.proc.stdout:
        seen.append(line)
        if "serving on" in line:
            break
    try:
        assert f"fangfei serving on http://127.0.0.1:{srv.port}" in seen[-1], "".join(seen)
        # at once, without retrying: the port is bound and the app has started
        assert httpx.get(srv.base + "/healthz", timeout=5).status_code == 200
        assert any("Application startup complete" in line for line in seen[:-1]), "".join(seen)
    finally:
        log = srv.stop()
    assert log.count("serving on") == 0  # said once, before the stop
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([FANGFEI, "serve"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                              env={**os.environ, **env, "FANGFEI_HTTP__PORT": str(port)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [f"cannot serve on 127.0.0.1:{port}: Address already in use"], proc.stderr
    assert "serving on" not in proc.stdout + proc.stderr


def test_debug_logs_carry_neither_the_bot_token_nor_the_webhook_secret(tmp_path: Path) -> None:
    """At log.level DEBUG python-telegram-bot would log its Bot API URL (with the token), setWebhook's parameters
    (with the secret) and every update (with the resident's words and ids), httpx every request URL: secrets are
    redacted from what reaches the log, and python-telegram-bot says nothing below INFO."""
    secret, resident, words = "webhook-secret-Zq81xV", 918273645599, "消费全返是真的吗"
    with FakeTelegram() as fake:
        srv = Server({"FANGFEI_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'debug.db'}",
                      "FANGFEI_LOG__LEVEL": "DEBUG", "FANGFEI_TELEGRAM__TOKEN": fake.token,
                      "FANGFEI_TELEGRAM__BASE_URL": fake.base_url, "FANGFEI_TELEGRAM__WEBHOOK_SECRET": secret})
        srv.env["FANGFEI_TELEGRAM__WEBHOOK_URL"] = f"{srv.base}/telegram/webhook"
        srv.start()
        try:
            assert fake.webhook is not None and fake.webhook["url"] == srv.env["FANGFEI_TELEGRAM__WEBHOOK_URL"]
            fake.user_message(resident, words)  # delivered to the webhook, with the secret header
            fake.wait_sent(1, chat_id=resident, timeout=20)
        finally:
            log = srv.stop()
        fake.assert_no_violations()
    assert "DEBUG" in log and "/bot[redacted]/sendMessage" in log  # httpx's DEBUG request line, redacted
    assert fake.token not in log and fake.token.split(":")[1] not in log and secret not in log
    assert words not in log and str(resident) not in log and "DEBUG telegram" not in log


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
