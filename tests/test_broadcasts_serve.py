"""One warning through `fangfei serve` on every route at once (issue 14 §5): Telegram subscribers through the fake
Bot API, WeChat subscribers inside the 48 hours (they wrote through serve's own /wechat endpoint) and beyond them (a
template message), a web subscriber (a notice at their next message), the township's WeCom robot, and a village
cadre who relays it and says so with the button. Drafted and approved with the CLI (refused to its drafter)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from bot import subscribers
from bot.services import Services
from bot.storage.models import Subscriber, utcnow
from tests.fake_telegram import FakeTelegram
from tests.fake_wechat import FakeWeChat, FakeWeComRobot
from tests.support import Server
from tests.test_broadcasts import UNSUBSCRIBE
from tests.test_cli import run
from tests.test_web_chat import WebUser
from tests.wechat_client import TOKEN, WeChatServer

TEXT = "【防非提醒】城关镇有人办讲座，让老人交钱入股养老院。请不要交钱。"
TEMPLATE = "tpl-warning-serve"
ELDER_TG, CADRE_TG = 7301, 9301


async def _wait(check: Any, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := check():
            return result
        await asyncio.sleep(0.25)
    raise AssertionError("timed out waiting")


async def test_one_warning_reaches_every_route_once_through_serve(db_env: dict[str, str],
                                                                 services: Services) -> None:
    async with services.db.transaction() as session:
        await subscribers.subscribe(session, "telegram", str(ELDER_TG), "elderly", "城关镇", "南关村")
        await subscribers.subscribe(session, "telegram", "7302", "student", "城关镇", "东街社区")  # not this audience
        for openid in ("o-near", "o-far"):
            await subscribers.subscribe(session, "wechat", openid, "elderly", "城关镇", "南关村")
        await subscribers.subscribe(session, "web", "w-elder", "elderly", "城关镇", "西街社区")
        await subscribers.subscribe(session, "web", "w-hekou", "elderly", "河口乡", "李家村")  # another township
    with FakeTelegram() as telegram, FakeWeComRobot() as robot:
        async with FakeWeChat() as wechat:
            wechat.add_template(TEMPLATE)
            env = {**db_env,
                   "FANGFEI_TELEGRAM__TOKEN": telegram.token, "FANGFEI_TELEGRAM__BASE_URL": telegram.base_url,
                   "FANGFEI_WECHAT__TOKEN": TOKEN, "FANGFEI_WECHAT__APP_ID": wechat.appid,
                   "FANGFEI_WECHAT__APP_SECRET": wechat.secret, "FANGFEI_WECHAT__API_BASE_URL": wechat.api_base_url,
                   "FANGFEI_WECHAT__TEMPLATE_ID": TEMPLATE,
                   "FANGFEI_BROADCASTS__APPROVERS": '["李四"]', "FANGFEI_BROADCASTS__EVERY_SECONDS": "0.5",
                   "FANGFEI_BROADCASTS__TOWNSHIP_ROBOTS": json.dumps({"chengguan": robot.url})}
            run("cadres", "add", "--name", "王村长", "--village", "chengguan-nanguan", "--channel", "telegram",
                "--id", str(CADRE_TG), env=env)
            server = Server(env)
            server.start()
            try:
                async with httpx.AsyncClient(base_url=server.base) as client:
                    # o-near writes through serve (its 48 hours open); o-far wrote three days ago
                    oa = WeChatServer(client, safe=False)
                    for openid in ("o-near", "o-far"):
                        assert await oa.say(openid, "你好")
                        wechat.user_wrote(openid)
                    async with services.db.transaction() as session:
                        await session.execute(update(Subscriber).where(Subscriber.user_id == "o-far")
                                              .values(last_seen=utcnow() - timedelta(days=3)))
                    wechat.user_wrote("o-far", at=wechat.now() - 3 * 86400)

                    made = json.loads(run(
                        "broadcast", "create", "--text", TEXT, "--audience", "elderly", "--township", "chengguan",
                        "--channels", "telegram,wechat,wecom,web,relay", "--urgent", "--as", "张三", "--json",
                        env=env).stdout)
                    preview = run("broadcast", "preview", str(made["id"]), env=env).stdout
                    for line in ("recipients: 4, reachable now: 4", "warn-wechat: 1", "warn-wechat-tpl: 1",
                                 "warn-telegram: 1", "warn-notice: 1", "warn-wecom: 1", "1 by template message"):
                        assert line in preview, preview
                    refused = run("broadcast", "approve", str(made["id"]), "--as", "张三", env=env, check=False)
                    assert refused.returncode != 0 and "Traceback" not in refused.stderr
                    run("broadcast", "approve", str(made["id"]), "--as", "李四", env=env)

                    def status() -> dict[str, Any]:
                        return json.loads(run("broadcast", "status", str(made["id"]), "--json", env=env).stdout)

                    done = await _wait(lambda: (s := status())["state"] == "done" and s)
                    # the cadre relays it and taps the button; the status shows the village as relayed
                    handed = telegram.messages_to(CADRE_TG)
                    assert len(handed) == 1 and TEXT in handed[0]["plain_text"]
                    telegram.press(CADRE_TG, "已转发到村群")
                    await _wait(lambda: any("已转发到村群" in t for t in telegram.texts_to(CADRE_TG)[1:]))
                    relayed = next(r for r in status()["relay"] if r["village"] == "chengguan-nanguan")
                    assert relayed["relayed"] == 1

                    web = WebUser(client, "w-elder")
                    await web.send("你好")
                    assert TEXT in web.text and UNSUBSCRIBE in web.text
                    other = WebUser(client, "w-hekou")
                    await other.send("你好")
                    assert TEXT not in other.text
            finally:
                log = server.stop()
            assert [t for t in telegram.texts_to(ELDER_TG) if TEXT in t] == [f"{TEXT}\n\n{UNSUBSCRIBE}"]
            assert telegram.texts_to(7302) == []
            assert [t for t in wechat.texts_to("o-near") if TEXT in t] == [f"{TEXT}\n\n{UNSUBSCRIBE}"]
            assert len(wechat.templates_to("o-far")) == 1 and not any(TEXT in t for t in wechat.texts_to("o-far"))
            assert [m for m in robot.texts() if TEXT in m] and len(robot.texts()) == 1
            assert (done["failed"], done["pending"]) == (0, 0), done
            assert "Traceback" not in log
