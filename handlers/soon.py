"""Menu items whose flows are not built yet: say so kindly and point to what works today."""

from __future__ import annotations

from bot.conversation import Turn, action
from handlers.menu import MAIN_MENU


@action("quiz.start")
async def quiz_soon(turn: Turn, _: str = "") -> None:
    turn.finish()
    turn.say("知识答题马上就来，请再等等。现在可以先问问题，或者做个风险自测。", MAIN_MENU)


@action("report.start")
async def report_soon(turn: Turn, _: str = "") -> None:
    turn.finish()
    turn.say("在这里举报的功能正在准备中。")
    turn.say("现在您可以打 {hotline}，或者打{office}的电话 {office_phone} 举报。被骗了请马上报警：{police}。",
             MAIN_MENU)
