"""What a handler works with: one turn of a conversation, the choices it offers, and the action registry."""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.conversations import ConversationState
from bot.storage.database import TurnTransaction
from bot.types import Inbound, Option, Reply
from knowledge.text import normalize

if TYPE_CHECKING:
    from bot.services import Services

OPTION_VALUE = re.compile(r"^~([A-Za-z0-9]{6})\.(\d{1,2})$")
# a bare number that may pick an option of the menu (longer ones are amounts, phone numbers, hotlines …)
OPTION_NUMBER = re.compile(r"^[1-9]\d?$")
# around a typed label: quotes copied from "请点“详细说说”", a full stop, spaces
_LABEL_EDGES = " \"'“”‘’「」『』《》()（）[]【】。.!！?？,，、~～:：;；"


@dataclass(frozen=True)
class Choice:
    """An option a handler offers: the label the user sees and the action (with its argument) it runs."""

    label: str
    action: str
    arg: str = ""


@dataclass
class Turn:
    """One incoming message being answered: the user's words, their stored conversation, and the replies so far."""

    inbound: Inbound
    text: str
    services: Services
    tx: TurnTransaction
    conversation: ConversationState
    replies: list[Reply] = field(default_factory=list)

    @property
    def session(self) -> AsyncSession:
        """The ORM session of this message's transaction, for flows that store more than the conversation."""
        return self.tx.session

    # -- speaking -------------------------------------------------------------------------------------------------
    def say(self, text: str, choices: Sequence[Choice] = ()) -> None:
        """Send one message; with choices, it becomes the user's current menu (older menus expire)."""
        text = self.services.fill(text)
        if not choices:
            self.replies.append(Reply(text))
            return
        token = secrets.token_hex(3)
        ttl = timedelta(minutes=self.services.settings.chat.option_ttl_minutes)
        self.conversation.menu = {
            "token": token,
            "expires": (datetime.now(UTC) + ttl).isoformat(),
            "choices": [[c.label, c.action, c.arg] for c in choices],
        }
        options = tuple(Option(self.services.fill(c.label), f"~{token}.{i}") for i, c in enumerate(choices))
        self.replies.append(Reply(text, options))

    # -- where the user stands ------------------------------------------------------------------------------------
    @property
    def flow(self) -> str | None:
        return self.conversation.flow

    @property
    def step(self) -> str | None:
        return self.conversation.step

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.conversation.data or {})

    def go(self, flow: str, step: str, **data: Any) -> None:
        """Enter (or move within) a flow; `data` is merged into the flow's draft."""
        merged = self.data if self.conversation.flow == flow else {}
        merged.update(data)
        self.conversation.flow, self.conversation.step, self.conversation.data = flow, step, merged

    def finish(self) -> None:
        self.conversation.flow = self.conversation.step = None
        self.conversation.data = {}

    def chosen(self, value: str) -> Choice | None:
        """The choice of the current menu that an option value names, or None when it is stale or foreign."""
        m = OPTION_VALUE.match(value)
        menu = self.conversation.menu or {}
        if not m or m.group(1) != menu.get("token"):
            return None
        return self._menu_choice(int(m.group(2)))

    def chosen_by_number(self, number: int) -> Choice | None:
        """Numbered text menus (WeChat, the local chat): 1 is the first choice of the current menu."""
        return self._menu_choice(number - 1) if number >= 1 else None

    def chosen_by_label(self, text: str) -> Choice | None:
        """The user typed a label of the current menu instead of tapping it (in any width or script, with the
        quotes the instruction put around it, or a full stop)."""
        typed = _label_key(text)
        if not typed:
            return None
        for i, (label, *_rest) in enumerate((self.conversation.menu or {}).get("choices", [])):
            if _label_key(self.services.fill(label)) == typed:
                return self._menu_choice(i)
        return None

    def menu_choices(self) -> list[Choice]:
        """The choices of the current menu; none when there is no menu or it has expired."""
        menu = self.conversation.menu or {}
        if not menu.get("choices") or datetime.fromisoformat(menu["expires"]) < datetime.now(UTC):
            return []
        return [Choice(*c) for c in menu["choices"]]

    def tap(self, label: str = "", choices: Sequence[Choice] = ()) -> str:
        """How the user picks an option on this channel, for an instruction ("请" + this): "点“详细说说”" where
        options are buttons; where they are numbered lines (a terminal, WeChat) nothing can be clicked, so "回复数字 1"
        (the label's number among `choices`, the menu the message comes with), "发“确认提交”" (a label of a later
        menu) or "回复下面的数字"."""
        if not self.inbound.numbered:
            return f"点“{label}”" if label else "点下面的选项"
        if not label:
            return "回复下面的数字"
        numbers = [i for i, c in enumerate(choices, 1) if c.label == label]
        return f"回复数字 {numbers[0]}" if numbers else f"发“{label}”"

    def _menu_choice(self, index: int) -> Choice | None:
        choices = self.menu_choices()
        return choices[index] if 0 <= index < len(choices) else None


def _label_key(text: str) -> str:
    return normalize(text).strip(_LABEL_EDGES).replace(" ", "")


Action = Callable[[Turn, str], Awaitable[None]]
ACTIONS: dict[str, Action] = {}


def action(name: str) -> Callable[[Action], Action]:
    """Register a handler function as the target of option choices named `name`."""

    def register(fn: Action) -> Action:
        ACTIONS[name] = fn
        return fn

    return register


# -- what flows declare to the engine ---------------------------------------------------------------------------------
TextStep = Callable[[Turn, str], Awaitable[None]]
TurnStep = Callable[[Turn], Awaitable[None]]


@dataclass(frozen=True)
class Flow:
    """A multi-step conversation as the engine sees it: which steps wait for the user's words, which for a button,
    and what happens when something else arrives in the middle. Only `name` is required."""

    name: str
    # step → what to do with the words typed there
    text_steps: dict[str, TextStep] = field(default_factory=dict)
    # steps that wait for a button: typed words (not a label, number or keyword) get "请点…" / "请回复…" and `resume`
    button_steps: frozenset[str] = frozenset()
    # ask the current step's question again
    resume: TurnStep | None = None
    # an action that would leave the flow: with `confirm_leave`, the user is asked first unless `stays(action)`
    stays: Callable[[str], bool] = lambda name: True
    confirm_leave: Callable[[Turn, str, str], Awaitable[None]] | None = None
    # a stale option mid-flow (default: the main menu's "expired")
    expired: TurnStep | None = None
    # something the flow cannot use (kind: "text" for only emoji/punctuation, "voice", "location" …)
    unusable: Callable[[Turn, str], Awaitable[None]] | None = None
    # photos and files sent mid-flow
    attach: TurnStep | None = None
    # drop a draft that is too old (before the message is routed); True when it did
    expire: Callable[[Turn], bool] | None = None

    def leaving(self, action_name: str) -> bool:
        """Would running this action leave the flow in a way the user must confirm?"""
        return self.confirm_leave is not None and not self.stays(action_name)


FLOWS: dict[str, Flow] = {}
# words that run an action wherever the user is (compared after normalisation), and slash commands with a text
# argument ("/ask 消费全返是真的吗"): command → (the action it starts, what it does with the text)
KEYWORDS: dict[str, str] = {}
TEXT_COMMANDS: dict[str, tuple[str, TextStep]] = {}
# slash commands run as they are (staff commands), and recognisers of messages that say what they are (a receipt
# number): each returns True when it answered the message
COMMANDS: dict[str, TurnStep] = {}
RECOGNISERS: list[Callable[[Turn, str], Awaitable[bool]]] = []
# free text outside any step: tried in order, the first to return True answered it (the last always does)
FREE_TEXT: list[tuple[int, Callable[[Turn, str], Awaitable[bool]]]] = []


def register_flow(flow: Flow) -> Flow:
    FLOWS[flow.name] = flow
    return flow


def keywords(action_name: str, *words: str) -> None:
    for word in words:
        KEYWORDS[word] = action_name


def free_text(order: int) -> Callable[[Callable[[Turn, str], Awaitable[bool]]],
                                      Callable[[Turn, str], Awaitable[bool]]]:
    def register(fn: Callable[[Turn, str], Awaitable[bool]]) -> Callable[[Turn, str], Awaitable[bool]]:
        FREE_TEXT.append((order, fn))
        FREE_TEXT.sort(key=lambda item: item[0])
        return fn

    return register
