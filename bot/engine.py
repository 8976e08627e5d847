"""The engine: takes an Inbound, finds the user's conversation, routes to a handler, returns the replies."""

from __future__ import annotations

import logging
from typing import Protocol

import handlers.ask
import handlers.check
import handlers.menu
import handlers.report
import handlers.soon
import handlers.staff
import handlers.subscribe  # (importing a handler module registers its actions)
from bot import followers, groups, subscribers
from bot.conversation import ACTIONS, OPTION_VALUE, Turn
from bot.services import Services
from bot.storage import conversations, inbox
from bot.storage.database import Conflict, ConnectionLost
from bot.storage.inbox import Claim
from bot.types import Inbound, Reply
from knowledge.text import is_meaningful, normalize, strip_control

log = logging.getLogger(__name__)

# Words that open a flow directly, whatever the user was doing (compared after normalisation).
KEYWORDS = {
    **dict.fromkeys(("/start", "/menu", "菜单", "主菜单", "开始", "你好", "您好", "hi", "hello", "0"), "menu.welcome"),
    **dict.fromkeys(("/help", "帮助", "help", "?", "怎么用", "使用说明"), "menu.help"),
    **dict.fromkeys(("问问题", "提问", "/ask"), "ask.start"),
    **dict.fromkeys(("风险自测", "自测", "测一测", "/check"), "check.start"),
    **dict.fromkeys(("知识答题", "答题", "/quiz"), "quiz.start"),
    **dict.fromkeys(("我要举报", "举报", "/report", "举报线索"), "report.start"),
    **dict.fromkeys(("查询举报", "查举报", "/status", "举报进度"), "report.status"),
    **dict.fromkeys(("取消", "/cancel", "取消举报", "不举报了"), "menu.cancel"),
    **dict.fromkeys(("继续", "接着填", "/continue"), "report.resume"),
    **dict.fromkeys(("订阅", "订阅提醒", "/subscribe"), "subscribe.start"),
    **dict.fromkeys(("退订", "取消订阅", "/unsubscribe"), "subscribe.stop"),
}
STAFF_COMMANDS = {"/stats": handlers.staff.stats, "/gaps": handlers.staff.gaps, "/take": handlers.staff.take,
                  "/verify": handlers.staff.verify, "/tip": handlers.staff.tip, "/reveal": handlers.staff.reveal}
THANKS = {"谢谢", "谢谢你", "谢谢您", "多谢", "感谢", "好的谢谢", "thanks", "thank you"}
# Flow steps that wait for the user's own words.
TEXT_STEPS = {("ask", "question"): handlers.ask.answer, ("check", "offer"): handlers.check.run,
              ("status", "receipt"): handlers.report.status,
              **{("report", step): handlers.report.answer
                 for step in ("what", "who", "where", "village", "money", "when", "evidence", "name", "contact")}}
# A report waits for a button at these steps; typed words get the question again.
BUTTON_STEPS = {("report", "identity"), ("report", "summary")}
# attempts at a message whose conversation another message of the same user changed meanwhile (or that lost a
# deadlock to one): the first RACES read without a lock, the others wait for the row
RACES, ATTEMPTS = 2, 4
STATUS_QUERY = ("查询举报", "查举报", "/status", "举报进度", "查询")  # followed by a receipt, with or without a space


class Guard(Protocol):
    """A channel's exactly-once record of a message, written with the turn's last statement."""

    def claim(self, replies: list[Reply]) -> Claim:
        """The record marking the message answered with these replies (made just before it is written; once per
        attempt when the turn has to be answered again)."""
        ...

    def unclaim(self) -> None:
        """The attempt whose record was made failed: nothing was written, and the message is answered again."""
        ...


class _AlreadyAnswered(Exception):
    """Raised inside the transaction to roll back a turn whose message was answered before."""


class Engine:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def handle(self, inbound: Inbound) -> list[Reply]:
        return await self._handle(inbound, None) or []

    async def handle_once(self, inbound: Inbound, guard: Guard) -> list[Reply] | None:
        """Like `handle`, for a message the platform may deliver more than once: None when it was answered before
        (the turn is undone, so a retry changes nothing)."""
        try:
            return await self._handle(inbound, guard)
        except _AlreadyAnswered:
            return None

    async def _handle(self, inbound: Inbound, guard: Guard | None) -> list[Reply] | None:
        if inbound.is_group and not inbound.addressed:
            return []
        limits, counted = self.services.limits, inbound.role is None  # staff are not limited
        if counted and not limits.message(inbound.channel, inbound.user):
            log.warning("engine: a %s user is over the message limit; message not read", inbound.channel)
            return [Reply(self.services.fill(handlers.menu.SLOW_DOWN))]
        try:
            return await self._answer(inbound, guard)
        except _AlreadyAnswered:
            if counted:
                limits.not_a_message(inbound.channel, inbound.user)
            raise

    async def _answer(self, inbound: Inbound, guard: Guard | None) -> list[Reply] | None:
        attempt = 1
        while True:
            # nothing of a failed attempt was kept; the last ones hold the conversation row from the start
            try:
                return await self._turn(inbound, guard, locked=attempt > RACES)
            except (ConnectionLost, Conflict) as exc:
                if attempt == ATTEMPTS:
                    raise
                if guard is not None:
                    guard.unclaim()
                if isinstance(exc, ConnectionLost):  # answer it again on a fresh connection
                    log.warning("engine: the database connection was lost; handling the message again")
            attempt += 1

    async def _turn(self, inbound: Inbound, guard: Guard | None, locked: bool) -> list[Reply] | None:
        async with self.services.db.turn(locked) as tx:
            vault = self.services.vault
            conversation = await conversations.load(tx, vault, inbound.channel, inbound.user, inbound.chat)
            before = conversation.snapshot()
            text = strip_control(inbound.text).strip()
            turn = Turn(inbound, text, self.services, tx, conversation)
            limit = self.services.settings.chat.max_text_chars
            if len(text) > limit:
                turn.text = text[:limit]
                turn.say(f"您的消息太长了，我只看了前 {limit} 个字。")
            if conversation.notice:  # news kept for the user's next visit (e.g. a tip's new status)
                turn.say(conversation.notice)
                conversation.notice = None
            if handlers.report.expire_stale(turn):  # what they sent belonged to the old draft: not routed on
                await handlers.menu.main_menu(turn)
            else:
                await self._route(turn)
            moved = conversation.snapshot() != before
            await tx.flush()  # what the flow stored through the session goes first, in the same transaction
            claim = guard.claim(turn.replies) if guard is not None else None
            if not await conversations.save(tx, vault, conversation, moved, claim):
                raise _AlreadyAnswered
        return turn.replies

    async def joined_group(self, channel: str, chat: str, title: str, key: str | None = None) -> list[Reply]:
        """The bot was added to a group: remember it and introduce ourselves briefly (once per `key`, the platform's
        id of this event, however often it is delivered)."""
        async with self.services.db.transaction() as session:
            if key is not None and not await inbox.record(session, key, postgres=not self.services.db.is_sqlite):
                return []
            await groups.record(session, channel, chat, title, active=True)
        return [Reply(self.services.fill(handlers.menu.GROUP_INTRO))]

    async def left_group(self, channel: str, chat: str, title: str) -> None:
        async with self.services.db.transaction() as session:
            await groups.record(session, channel, chat, title, active=False)

    async def unreachable(self, channel: str, user: str) -> None:
        """The user blocked the bot, or the platform refused a send to them."""
        async with self.services.db.transaction() as session:
            await subscribers.mark_unreachable(session, channel, user)

    async def followed(self, channel: str, user: str, source: str | None) -> None:
        """The user followed the account; `source` is the QR scene they came from (e.g. a village code)."""
        async with self.services.db.transaction() as session:
            await followers.follow(session, user, source)

    async def unfollowed(self, channel: str, user: str) -> None:
        async with self.services.db.transaction() as session:
            await followers.unfollow(session, user)
            await subscribers.unsubscribe(session, channel, user)

    def sorry(self) -> Reply:
        return Reply(self.services.fill(handlers.menu.SORRY))

    @staticmethod
    async def _run(turn: Turn, name: str, arg: str) -> None:
        """Run an action; one that would leave an unfinished report asks first."""
        if turn.flow == "report" and not handlers.report.stays_in_report(name):
            await handlers.report.confirm_leave(turn, name, arg)
        else:
            await ACTIONS[name](turn, arg)

    async def _route(self, turn: Turn) -> None:
        if turn.inbound.kind != "text":
            if turn.inbound.media and turn.flow == "report":
                await handlers.report.attach(turn)
            elif turn.flow == "report":  # a voice note, a location …
                await handlers.report.unusable(turn, turn.inbound.kind)
            else:
                await handlers.menu.media(turn, turn.inbound.kind)
            return
        text = turn.text
        waiting = TEXT_STEPS.get((turn.flow or "", turn.step or ""))
        if OPTION_VALUE.match(text) or (turn.inbound.numbered and text.isascii() and text.isdigit() and text != "0"):
            choice = turn.chosen(text) if text.startswith("~") else turn.chosen_by_number(int(text))
            if choice is not None and choice.action in ACTIONS:
                await self._run(turn, choice.action, choice.arg)
                return
            if waiting is None or text.startswith("~"):
                # stale: ask again; an unfinished report stays where it is
                await (handlers.report.expired_step if turn.flow == "report" else handlers.menu.expired)(turn)
                return
            # not an option of the menu, at a step that waits for words: a phone number, an amount …
        choice = turn.chosen_by_label(text)
        if choice is not None and choice.action in ACTIONS:
            await self._run(turn, choice.action, choice.arg)
            return
        if not is_meaningful(text):  # only emoji or punctuation
            if turn.flow == "report":
                await handlers.report.unusable(turn, "text")
            else:
                await handlers.menu.unreadable(turn)
            return
        words = normalize(text)
        command, _, rest = words.partition(" ")
        if command in STAFF_COMMANDS:
            await STAFF_COMMANDS[command](turn)
            return
        if command in ("/ask", "/check") and rest.strip():
            if turn.flow == "report":  # an unfinished report is not dropped unasked
                await handlers.report.confirm_leave(turn, "ask.start" if command == "/ask" else "check.start")
                return
            await (handlers.ask.answer if command == "/ask" else handlers.check.run)(turn, rest.strip())
            return
        receipt = handlers.report.RECEIPT.search(text)
        if receipt and (words.startswith(STATUS_QUERY) or words == receipt.group(0).lower()):
            await handlers.report.status(turn, receipt.group(0))
            return
        if words.rstrip("!！。.") in THANKS:
            await handlers.menu.thanks(turn)
            return
        if words in KEYWORDS:
            await self._run(turn, KEYWORDS[words], "")
            return
        if (turn.flow, turn.step) in BUTTON_STEPS:
            turn.say("请点下面的选项。")
            await handlers.report.resume(turn)
        elif waiting is not None:
            await waiting(turn, text)
        elif (report := self.services.risk.offer_check(text)) is not None:
            await handlers.check.run(turn, text, report)
        else:
            await handlers.ask.answer(turn, text)
