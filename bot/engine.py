"""The engine: takes an Inbound, finds the user's conversation, routes to a handler, returns the replies."""

from __future__ import annotations

import logging
from typing import Protocol

import handlers.ask
import handlers.check
import handlers.menu
import handlers.quiz
import handlers.relay
import handlers.report
import handlers.staff
import handlers.subscribe  # (importing a handler module registers its actions, flows, keywords and commands)
from bot import followers, groups, subscribers
from bot.conversation import (
    ACTIONS,
    COMMANDS,
    FLOWS,
    FREE_TEXT,
    KEYWORDS,
    OPTION_NUMBER,
    OPTION_VALUE,
    RECOGNISERS,
    TEXT_COMMANDS,
    Flow,
    TextStep,
    Turn,
)
from bot.services import Services
from bot.storage import conversations, inbox
from bot.storage.database import Conflict, ConnectionLost
from bot.storage.inbox import Claim
from bot.types import Inbound, Reply
from knowledge.text import is_meaningful, normalize, strip_control

log = logging.getLogger(__name__)
# attempts at a message whose conversation another message of the same user changed meanwhile (or that lost a
# deadlock to one): the first RACES read without a lock, the others wait for the row
RACES, ATTEMPTS = 2, 4
TRAILING = "!！。.?？~～啊呀呢"  # "谢谢！" is "谢谢", "你是谁？" and "你是谁呀" are "你是谁"
QUOTES = "\"'“”‘’「」『』《》"  # “回主菜单” typed with the quotes an instruction put around it


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
            await subscribers.seen(tx, inbound.channel, inbound.user)  # a platform's messaging window opens again
            if conversation.notice:  # news kept for the user's next visit (e.g. a tip's new status)
                turn.say(conversation.notice)
                conversation.notice = None
            flow = FLOWS.get(turn.flow or "")
            if flow is not None and flow.expire is not None and flow.expire(turn):
                await handlers.menu.main_menu(turn)  # what they sent belonged to the old draft: not routed on
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
        """Run an action; one that would leave an unfinished flow (a report) asks first."""
        flow = FLOWS.get(turn.flow or "")
        if flow is not None and flow.confirm_leave is not None and flow.leaving(name):
            await flow.confirm_leave(turn, name, arg)
        else:
            await ACTIONS[name](turn, arg)

    async def _route(self, turn: Turn) -> None:
        flow = FLOWS.get(turn.flow or "")
        if turn.inbound.kind != "text":
            if turn.inbound.media and flow is not None and flow.attach is not None:
                await flow.attach(turn)
            elif flow is not None and flow.unusable is not None:  # a voice note, a location …
                await flow.unusable(turn, turn.inbound.kind)
            else:
                await handlers.menu.media(turn, turn.inbound.kind)
            return
        text = turn.text
        waiting = flow.text_steps.get(turn.step or "") if flow is not None else None
        # a bare number picks an option on every channel: numbered lines show it, buttons are in the same order
        if OPTION_VALUE.match(text) or OPTION_NUMBER.match(text):
            choice = turn.chosen(text) if text.startswith("~") else turn.chosen_by_number(int(text))
            if choice is not None and choice.action in ACTIONS:
                await self._run(turn, choice.action, choice.arg)
                return
            if text.startswith("~") or (waiting is None and turn.conversation.menu and not turn.menu_choices()):
                # stale: ask again; an unfinished flow stays where it is
                await (flow.expired if flow is not None and flow.expired else handlers.menu.expired)(turn)
                return
            if waiting is None:  # a number the menu does not have: say which ones it has
                await handlers.menu.no_such_option(turn, int(text))
                return
            # not an option of the menu, at a step that waits for words: an amount, a year …
        choice = turn.chosen_by_label(text)
        if choice is not None and choice.action in ACTIONS:
            await self._run(turn, choice.action, choice.arg)
            return
        if not is_meaningful(text):  # only emoji or punctuation
            if flow is not None and flow.unusable is not None:
                await flow.unusable(turn, "text")
            else:
                await handlers.menu.unreadable(turn)
            return
        words = normalize(text)
        command, _, rest = words.partition(" ")
        if command in COMMANDS:
            await COMMANDS[command](turn)
            return
        if command in TEXT_COMMANDS and rest.strip():
            starts, run = TEXT_COMMANDS[command]
            if flow is not None and flow.confirm_leave is not None and flow.leaving(starts):
                await flow.confirm_leave(turn, starts, "")  # an unfinished flow is not dropped unasked
                return
            await run(turn, rest.strip())
            return
        for recognise in RECOGNISERS:
            if await recognise(turn, words):
                return
        name = KEYWORDS.get(words) or KEYWORDS.get(words.strip(QUOTES).rstrip(TRAILING).strip(QUOTES))
        if name is not None:
            await self._run(turn, name, "")
            return
        await self._words(turn, flow, text, waiting)

    @staticmethod
    async def _words(turn: Turn, flow: Flow | None, text: str, waiting: TextStep | None) -> None:
        """The user's own words: the answer to the step waiting for them, or free text."""
        if flow is not None and turn.step in flow.button_steps:
            turn.say(f"请{turn.tap()}。")
            if flow.resume is not None:
                await flow.resume(turn)
            return
        if waiting is not None:
            await waiting(turn, text)
            return
        for _, answer in FREE_TEXT:
            if await answer(turn, text):
                return
