"""知识答题 in a private chat (the web chat; every channel goes through the same engine and flow)."""

from __future__ import annotations

import httpx

from bot.engine import Engine
from quizzes import campaigns
from tests.test_quiz_api import BANK
from tests.test_web_chat import WebUser


async def open_campaign(engine: Engine) -> None:
    async with engine.services.db.transaction() as session:
        await campaigns.create(session, slug="elderly-2026", name="老年人防非知识答题", audience="elderly",
                               questions=3, open_now=True)


async def test_a_resident_answers_a_ranked_round_and_can_come_back_mid_way(engine: Engine,
                                                                           web: httpx.AsyncClient) -> None:
    engine.services.quiz_questions = list(BANK)
    await open_campaign(engine)
    me = WebUser(web, "web-quiz-1")
    await me.send("答题")
    assert "先说说您是" in me.text
    await me.tap("老年人")
    assert "成绩按村（社区）和学校排名" in me.text and "青山镇" in me.options()
    await me.tap("青山镇")
    await me.tap("石桥村")
    assert "一共 3 道题" in me.text and "第 1/3 题" in me.text
    await me.tap(next(iter(me.options())))  # any option
    assert ("答对了" in me.text or "答错了" in me.text) and "第 2/3 题" in me.text
    await me.send("你好")  # off to the main menu in the middle
    await me.send("答题")
    assert "接着来" in me.text and "第 2/3 题" in me.text  # where it stopped; not asked who or where again
    stale = dict(me.options())
    await me.tap(next(iter(me.options())))
    await me.send(next(iter(stale.values())))  # the same question's button again
    assert "已经过期" in me.text and "第 3/3 题" in me.text
    await me.send("随便写点什么")  # words where a button is wanted
    assert "请点下面的选项" in me.text and "第 3/3 题" in me.text
    await me.tap(next(iter(me.options())))
    assert "答完了" in me.text and "排第 1 名" in me.text and "再答一次" in me.options()


async def test_without_an_open_campaign_a_practice_round_is_not_ranked(engine: Engine,
                                                                      web: httpx.AsyncClient) -> None:
    engine.services.quiz_questions = list(BANK)
    me = WebUser(web, "web-quiz-2")
    await me.send("答题")
    await me.tap("学生")
    assert "练习题（不排名）" in me.text and "第 1/5 题" in me.text
    for _ in range(5):
        await me.tap(next(iter(me.options())))
    assert "练习做完了" in me.text
    await me.send("答题")  # who they are is remembered
    assert "先说说您是" not in me.text and "练习题" in me.text


async def test_a_quiz_on_wechat_with_numbered_options(engine: Engine) -> None:
    """Through signed, encrypted XML: options are numbered lines and a bare number answers."""
    from bot.channels.wechat import WeChatChannel
    from bot.web.app import create_app
    from tests.test_wechat import wechat_settings
    from tests.wechat_client import WeChatServer

    engine.services.quiz_questions = list(BANK)
    await open_campaign(engine)
    channel = WeChatChannel(engine, wechat_settings(True))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(engine, channel.routes())),
                                 base_url="http://oa.test") as client:
        wechat = WeChatServer(client, safe=True)
        user = "o-quiz-player"
        assert "回复 1：老年人" in await wechat.say(user, "答题")
        where = await wechat.say(user, "1")
        assert "回复 3：青山镇" in where
        await wechat.say(user, "3")
        first = await wechat.say(user, "2")  # 石桥村
        assert "第 1/3 题" in first and "回复 1：" in first
        for _ in range(3):
            reply = await wechat.say(user, "1")
        assert "答完了" in reply and "排第 1 名" in reply
    await channel.close()


async def test_the_bundled_banks_serve_a_practice_round(engine: Engine, web: httpx.AsyncClient) -> None:
    me = WebUser(web, "web-quiz-real")
    await me.send("答题")
    await me.tap("老年人")
    assert "第 1/5 题" in me.text and "{" not in me.text and len(me.options()) >= 2
    await me.tap(next(iter(me.options())))
    assert ("答对了" in me.text or "答错了" in me.text) and "第 2/5 题" in me.text
