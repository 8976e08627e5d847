"""Menu items whose flows are not built yet: say so kindly and point to what works today."""

from __future__ import annotations

from bot.conversation import Turn, action, keywords
from handlers.menu import MAIN_MENU


@action("quiz.start")
async def quiz_soon(turn: Turn, _: str = "") -> None:
    turn.finish()
    turn.say("知识答题马上就来，请再等等。现在可以先问问题，或者做个风险自测。", MAIN_MENU)


keywords("quiz.start", "知识答题", "答题", "/quiz")
