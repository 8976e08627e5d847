"""Risk self-check: the resident describes an offer; we name the red flags and say what to do."""

from __future__ import annotations

from bot.conversation import Choice, Turn, action
from handlers.menu import BACK
from knowledge.risk import RiskReport

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
    entry = turn.services.explain(offer, report.category)
    if entry is not None:
        choices.append(Choice(f"了解：{entry.title}", "ask.show", entry.id))
    if report.risky:
        choices.append(Choice("我要举报", "report.start"))
    choices += [Choice("再测一个", "check.start"), BACK]
    turn.say(report.advice, choices)
