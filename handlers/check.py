"""Risk self-check: the resident describes an offer; we name the red flags and say what to do."""

from __future__ import annotations

from bot.conversation import TEXT_COMMANDS, Choice, Flow, Turn, action, free_text, keywords, register_flow
from handlers.ask import show
from handlers.menu import BACK, main_menu
from knowledge.risk import RiskReport

EXPLAIN_CHARS = 300  # of the offer, kept with the menu until the resident's next message to find the entry

HEADLINES = {
    "high": "⚠️ 风险很高：这很像非法集资。",
    "medium": "⚠️ 有风险：有非法集资的苗头，要小心。",
    "low": "暂时没看出非法集资的明显特征。",
}


@action("check.start")
async def start(turn: Turn, _: str = "") -> None:
    turn.go("check", "offer")
    turn.say("请把对方是怎么说的告诉我，我帮您看看。\n比如：“每月返利8%，拉人还有奖励”。")


async def run(turn: Turn, offer: str, report: RiskReport | None = None) -> None:
    """Check an offer (`report`: its check, when the caller has made it already)."""
    turn.finish()
    report = report or turn.services.risk.check(offer)
    lines = [HEADLINES[report.level]]
    if report.signals:
        lines.append("我看到这些危险信号：")
        lines += [f"· {s.feature}：“{s.evidence}”" for s in report.signals]
    turn.say("\n".join(lines))
    choices: list[Choice] = []
    kb = turn.services.kb
    category = kb.categories.get(report.category) if report.category else None
    if category is not None and kb.in_category(category.slug):  # the entry itself is looked up when asked for
        choices.append(Choice(f"了解这类骗局：{category.name}", "check.explain",
                              f"{category.slug}\n{offer[:EXPLAIN_CHARS]}"))
    if report.risky:
        choices.append(Choice("我要举报", "report.start"))
    choices += [Choice("再测一个", "check.start"), BACK]
    turn.say(report.advice, choices)


@action("check.explain")
async def explain(turn: Turn, arg: str) -> None:
    """The knowledge entry that best explains the offer just checked, within the scheme's category."""
    category, _, offer = arg.partition("\n")
    entry = turn.services.explain(offer, category)
    if entry is None:  # the knowledge base no longer has that category
        await main_menu(turn)
        return
    await show(turn, entry.id)


@free_text(order=10)
async def an_offer(turn: Turn, text: str) -> bool:
    """Free text that describes an offer (the risk check says so) is checked rather than searched."""
    report = turn.services.risk.offer_check(text)
    if report is None:
        return False
    await run(turn, text, report)
    return True


register_flow(Flow("check", text_steps={"offer": run}))
keywords("check.start", "风险自测", "自测", "测一测", "/check")
TEXT_COMMANDS["/check"] = ("check.start", run)
