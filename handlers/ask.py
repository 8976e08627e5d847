"""Ask: the resident asks in their own words; we answer from the knowledge base or honestly say we can't."""

from __future__ import annotations

from collections.abc import Sequence

from bot.conversation import TEXT_COMMANDS, Choice, Flow, Turn, action, free_text, keywords, register_flow
from bot.services import record_gap
from handlers.menu import BACK, MAIN_MENU
from knowledge.schema import Entry
from knowledge.search import Hit

MORE = "详细说说"
BASIS = "法律依据"
# the last line of an answer: what the reader can do now, whatever option they pick (issue 15 §3)
CLOSING = "拿不准，先别交钱，打 {hotline} 问问。"


@action("ask.start")
async def start(turn: Turn, _: str = "") -> None:
    turn.go("ask", "question")
    turn.say("请把您想问的发给我。\n比如：“养老院让交钱订床位，每年给利息，靠谱吗？”")


async def answer(turn: Turn, question: str) -> None:
    turn.finish()
    result = turn.services.search(question, group=turn.inbound.is_group)
    if not result.worded:  # "这个靠谱吗": nothing to look up, so ask what it is about
        turn.go("ask", "question")
        turn.say("您问的是哪件事？请说具体些。\n比如：“有人让我交一万块入会，每月返八百，靠谱吗？”")
        return
    if not result.matched or result.best is None:
        await record_gap(turn.tx, question)
        turn.say("这个问题我还答不上来。我不想乱说，免得误导您。")
        close = [] if turn.inbound.is_group else _close_answers(turn, result.hits)
        if close:
            # not sure enough to answer, close enough to ask: the resident decides, we do not guess
            choices = [*close, BACK]
            pick = turn.tap(close[0].label, choices) if len(close) == 1 else turn.tap()
            turn.say(f"您问的是不是这件事？是的话，请{pick}。\n不是的话，换个说法再问。\n{CLOSING}", choices)
            return
        turn.say(f"您可以换个说法再问，也可以{turn.tap()}。\n有人让您交钱的，先别交，打 {{hotline}} 问问。", MAIN_MENU)
        return
    await show(turn, result.best.entry.id)


def _close_answers(turn: Turn, hits: Sequence[Hit]) -> list[Choice]:
    """The answers a refused question came close to (at most two, each of its own category), to offer as options."""
    floor = turn.services.settings.search.suggest_threshold
    return [Choice(h.entry.title, "ask.show", h.entry.id) for h in hits[:2] if h.score >= floor]


@action("ask.show")
async def show(turn: Turn, entry_id: str) -> None:
    entry = await _entry(turn, entry_id)
    if entry is None:
        return
    choices = [Choice(MORE, "ask.more", entry.id), *_related(turn, entry), BACK]
    hint = f"想知道怎么识别、怎么办，请{turn.tap(MORE, choices)}。"
    turn.say(f"【{entry.title}】\n{entry.summary}\n\n{hint}\n{CLOSING}", choices)


@action("ask.more")
async def more(turn: Turn, entry_id: str) -> None:
    entry = await _entry(turn, entry_id)
    if entry is None:
        return
    turn.say(f"【{entry.title}】常见套路：\n{entry.body['套路']}")
    turn.say(f"怎么识别：\n{entry.body['识别']}")
    choices = [*_related(turn, entry), Choice(BASIS, "ask.basis", entry.id), Choice("风险自测", "check.start"), BACK]
    hint = f"想看法律怎么规定，请{turn.tap(BASIS, choices)}。"
    turn.say(f"怎么办：\n{entry.body['怎么办']}\n\n{hint}\n{CLOSING}", choices)


@action("ask.basis")
async def basis(turn: Turn, entry_id: str) -> None:
    """The statutes behind an answer, on request: residents act on the advice, the titles are for who wants them."""
    entry = await _entry(turn, entry_id)
    if entry is None:
        return
    lines = "\n".join(f"· {law}" for law in entry.legal_basis)
    choices = [Choice("我要举报", "report.start"), BACK]
    turn.say(f"【{entry.title}】法律依据：\n{lines}")
    turn.say(f"遇到这种事，可以举报，我们替您保密。请{turn.tap('我要举报', choices)}。", choices)


@action("ask.which")
async def which(turn: Turn, _: str = "") -> None:
    """"详细说说" typed where no answer's menu offers it: we do not know which answer, so ask for the question."""
    turn.go("ask", "question")
    turn.say(f"您想详细了解哪件事？请把问题发给我。\n我先简单答，想看详细的，再{turn.tap(MORE)}。")


def _related(turn: Turn, entry: Entry) -> list[Choice]:
    entries = turn.services.entries
    limit = turn.services.settings.search.related
    return [Choice(f"相关：{entries[r].title}", "ask.show", r) for r in entry.related if r in entries][:limit]


async def _entry(turn: Turn, entry_id: str) -> Entry | None:
    """The entry a button names; it may have been removed from the base since the button was shown."""
    entry = turn.services.entries.get(entry_id)
    if entry is None:
        turn.say(f"这条内容已经更新了。请重新问一次，或者{turn.tap()}。", MAIN_MENU)
    return entry


@free_text(order=100)
async def anything_else(turn: Turn, text: str) -> bool:
    """Words that are no answer to a step, no command and no offer: a question for the knowledge base."""
    await answer(turn, text)
    return True


register_flow(Flow("ask", text_steps={"question": answer}))
keywords("ask.start", "问问题", "提问", "/ask")
keywords("ask.which", MORE, "详细点", "说详细点", "详细说")
TEXT_COMMANDS["/ask"] = ("ask.start", answer)
