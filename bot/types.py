"""Platform-free message types: what a channel adapter hands the engine, and what the engine answers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Media:
    """A photo or file the user sent, as the platform refers to it (kept with a tip as evidence)."""

    kind: str  # "image" or "file"
    ref: str  # Telegram file_id, WeChat MediaId
    url: str | None = None
    name: str | None = None
    size: int | None = None  # bytes, when the platform says


@dataclass(frozen=True)
class Inbound:
    """One message from a user. `chat` is the user's own id in a private chat, the group's id in a group."""

    channel: str
    user: str
    chat: str
    text: str = ""
    # "text", or what else the user sent: "voice" (not recognised), "image", "link", "location", "unknown"
    kind: str = "text"
    is_group: bool = False
    # In a group: the message is a command, mentions the bot or replies to it.
    addressed: bool = True
    # The channel shows menus as numbered lines, so a bare number picks an option of the current menu.
    numbered: bool = False
    # Staff role of the sender ("admin" / "staff"), looked up by the channel from config; None for residents.
    role: str | None = None
    # The console account a staff sender acts as, when the channel's staff list names one.
    account: str | None = None
    # The message comes from the configured staff chat.
    staff_chat: bool = False
    # Photos and files that came with the message.
    media: tuple[Media, ...] = ()
    # The client's network address, where the channel knows it (the web chat); for abuse limits only, never stored.
    origin: str | None = None


@dataclass(frozen=True)
class Option:
    """A choice offered with a reply; sending `value` back as text selects it."""

    label: str
    value: str


@dataclass(frozen=True)
class Reply:
    text: str
    options: tuple[Option, ...] = field(default=())
