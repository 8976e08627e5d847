"""A fake Telegram Bot API server for tests.

The bot under test talks to it with python-telegram-bot's real HTTP client, so everything goes over real HTTP in
Telegram's own wire format::

    async with FakeTelegram() as fake:                      # async tests
        bot = Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url)
        ...

    with FakeTelegram() as fake:                            # sync tests, e.g. a bot running as a subprocess
        ...                                                 # (or fake.start() ... fake.stop())

Design: the server (Starlette under uvicorn, 127.0.0.1, a free port) always runs in its own daemon thread with its own
event loop, so it works the same for sync tests, for async tests whose bot shares the test's event loop, and for bots
running in another process.  All recorded state is guarded by one lock; test code may read the lists at any time.

Behaviour worth knowing:

* Every answer is ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N, "description": ...}`` with HTTP
  status N (plus ``parameters.retry_after`` for 429), as Telegram does.  Bodies may be JSON, urlencoded or multipart.
* Limits are enforced like Telegram (text 1..4096 characters after entity parsing, captions 1024, callback_data 1..64
  UTF-8 bytes, ≤100 inline buttons and ≤8 per row, non-empty button text, parse_mode HTML/Markdown/MarkdownV2 with
  Telegram's own entity parsers).  An offending call fails with 400 *and* is recorded in ``fake.violations``; tests
  should end with ``fake.assert_no_violations()``.  HTML mode is slightly stricter than Telegram: a bare ``&`` that is
  not an entity is rejected (Telegram shows it literally), because it means user text was not escaped.
* Errors that are *not* bot bugs (blocked by the user, kicked from a group, "message is not modified", injected
  failures) fail like Telegram but are not violations; they show up in ``fake.calls`` with their status.
* Privacy mode is on by default (as for a new bot): in groups, only commands, messages mentioning the bot, replies to
  the bot and messages in groups where the bot is an administrator are delivered; other group messages built by
  ``user_message``/``photo`` are recorded in ``fake.undelivered`` instead of being queued.  ``privacy_mode=False``
  turns this off.
* ``allowed_updates`` is honoured: updates of types the bot did not ask for are dropped into ``fake.undelivered``.
* While a webhook is set, getUpdates answers 409 and queued updates are POSTed to the webhook (in order, with the
  secret token header, retried until they get a 2xx); ``fake.webhook_deliveries`` records every attempt.
* Message ids are counted per chat, like in Telegram; the bot's messages and users' messages share the counter.
* Rate limits (more than 20 messages to one group in 60 s, more than 30 messages overall in 1 s) are recorded in
  ``fake.rate_violations``; with ``enforce_rate_limits=True`` the offending call also gets a 429.
* A user who blocked the bot (``my_chat_member(..., "kicked")``) and then writes to it again unblocks it: Telegram
  first sends my_chat_member kicked -> member, and the fake queues that too.

Reference:

* ``FakeTelegram(token=DEFAULT_TOKEN, *, username="fangfei_test_bot", first_name=..., privacy_mode=True,
  strict_chats=False, enforce_rate_limits=False)``; ``start()``/``stop()``, ``with``, ``async with``.
  ``strict_chats=True`` answers "chat not found" for chats the fake has not seen (otherwise positive ids become
  private chats and negative ones groups).  ``.token``, ``.bot_id``, ``.base_url``, ``.base_file_url``,
  ``.api_url`` (``{base_url}{token}``), ``.port``.
* Updates (each returns the update dict; ``queue=False`` only builds it, e.g. to POST it to a webhook yourself):
  ``user_message(user_id, text, chat_id=None, chat_type="private", *, first_name, last_name, username,
  language_code, title, reply_to_bot, reply_to_message_id, entities, queue)``,
  ``photo(user_id, file_id, caption=None, chat_id=None, chat_type="private", *, content, width, height, ...)``,
  ``callback(user_id, data, message_id=None, chat_id=None, chat_type="private", ...)``,
  ``press(chat_id, button_text, user_id=None)``,
  ``my_chat_member(chat_id, chat_type, old_status, new_status, user_id=None, *, title, first_name, queue)``,
  ``poll_answer(user_id, option_ids, poll_id=None, *, first_name, last_name, late, queue)`` (a poll sent with
  ``open_period`` closes by itself; ``late=True`` delivers a vote to a closed poll, held up on its way),
  ``queue(update)`` (any hand-made update dict).
* Failures: ``fail(method, status, times=1, retry_after=None, chat_id=None, description=None)``,
  ``clear_failures()``, ``set_bot_status(chat_id, status)``, ``set_member_status(chat_id, user_id, status)`` (what
  getChatMember and getChatAdministrators answer); ``add_chat(...)``, ``add_file(file_id, content)``.
* Records: ``sent`` (dicts: method, chat_id, message_id, text as sent, plain_text after parsing, caption,
  parse_mode, reply_markup as Python, time, params), ``calls`` (method, params, status, description, time),
  ``violations``, ``rate_violations``, ``injected``, ``callback_answers``, ``chat_actions``, ``deleted``,
  ``undelivered``, ``webhook_deliveries``; ``messages_to(chat_id)``, ``texts_to(chat_id)``,
  ``message(chat_id, message_id)`` (current state after edits), ``calls_to(method)``, ``commands``,
  ``commands_for(scope, language_code)``, ``webhook``, ``pending_updates``, ``unanswered_callbacks``, ``polls``,
  ``assert_no_violations()``, ``clear_records()``.
* Waiting: ``wait_for(predicate, timeout=10)`` (predicate takes no argument or the fake) and
  ``wait_sent(n=1, timeout=10, *, chat_id=None, method=None)``.  In async tests (a running event loop) they return
  a coroutine and MUST be awaited; in sync tests they block.  Both raise TimeoutError listing the last calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import json
import logging
import math
import re
import socket
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger("tests.fake_telegram")

DEFAULT_TOKEN = "123456789:AAFakeTelegramTokenForFangfeiTests0"
BOT_USERNAME = "fangfei_test_bot"
BOT_FIRST_NAME = "防非测试"
DEFAULT_GROUP_ID = -400000001  # a basic group
DEFAULT_SUPERGROUP_ID = -1001000000001

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_INLINE_BUTTONS = 100
MAX_INLINE_ROW = 8
MAX_REPLY_BUTTONS = 300
MAX_REPLY_ROW = 12
MAX_CALLBACK_ANSWER = 200
MAX_FILE_DOWNLOAD = 20 * 1024 * 1024
GROUP_RATE = (20, 60.0)  # messages, seconds
GLOBAL_RATE = (30, 1.0)

PARSE_MODES = {"html": "HTML", "markdown": "Markdown", "markdownv2": "MarkdownV2"}
CHAT_ACTIONS = {
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice", "upload_document",
    "choose_sticker", "find_location", "record_video_note", "upload_video_note",
}
MEMBER_STATUSES = {"creator", "administrator", "member", "restricted", "left", "kicked"}
UPDATE_TYPES = [
    "message", "edited_message", "channel_post", "edited_channel_post", "business_connection", "business_message",
    "edited_business_message", "deleted_business_messages", "message_reaction", "message_reaction_count",
    "inline_query", "chosen_inline_result", "callback_query", "shipping_query", "pre_checkout_query",
    "purchased_paid_media", "poll", "poll_answer", "my_chat_member", "chat_member", "chat_join_request",
    "chat_boost", "removed_chat_boost",
]
NOT_BY_DEFAULT = {"chat_member", "message_reaction", "message_reaction_count"}
INLINE_BUTTON_ACTIONS = (
    "url", "callback_data", "web_app", "login_url", "switch_inline_query", "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat", "copy_text", "callback_game", "pay",
)
SEND_METHODS = {"sendmessage", "sendphoto", "senddocument", "sendpoll"}
JSON_PARAMS = {
    "reply_markup", "entities", "caption_entities", "commands", "scope", "allowed_updates", "link_preview_options",
    "reply_parameters", "options", "explanation_entities", "question_entities", "menu_button", "rights", "reaction",
}
ERROR_DESCRIPTIONS = {
    400: "Bad Request: injected failure",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
}
NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and reply markup are exactly "
                "the same as a current content and reply markup of the message")
FAKE_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00fake-telegram-photo\xff\xd9"


class ApiError(Exception):
    """An error answer; ``violation`` (a short kind) marks it as a bot bug to record in ``fake.violations``."""

    def __init__(self, code: int, description: str, *, retry_after: int | None = None,
                 violation: str | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after
        self.violation = violation


class EntityError(ValueError):
    """Text could not be parsed in the given parse mode (Telegram: "can't parse entities: ...")."""


@dataclass
class UploadedFile:
    filename: str
    content: bytes
    content_type: str | None = None


@dataclass
class _Failure:
    method: str  # lower case, or "*"
    status: int
    times: int | None
    retry_after: int | None
    chat_id: str | None
    description: str


# --------------------------------------------------------------------------------------------------------------------
# Text: Telegram's entity parsers (ported from TDLib's MessageEntity.cpp, simplified), UTF-16 helpers.
# --------------------------------------------------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode())


class _Out:
    """Collects plain text and its length in UTF-16 code units."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.u16 = 0
        self.chars = 0

    def add(self, s: str) -> None:
        self.parts.append(s)
        self.u16 += utf16_len(s)
        self.chars += len(s)

    def text(self) -> str:
        return "".join(self.parts)


_HTML_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot)|#([0-9]+)|#x([0-9a-fA-F]+));")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "tg-spoiler": "spoiler",
    "span": "spoiler", "a": "text_link", "code": "code", "pre": "pre", "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}


def _html_entity_at(text: str, i: int) -> tuple[str, int] | None:
    m = _HTML_ENTITY.match(text, i)
    if not m:
        return None
    if m.group(1):
        return _NAMED[m.group(1)], m.end()
    code = int(m.group(2)) if m.group(2) else int(m.group(3), 16)
    if code == 0 or code >= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), m.end()


def _html_unescape_lenient(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        ent = _html_entity_at(value, i) if value[i] == "&" else None
        if ent:
            out.append(ent[0])
            i = ent[1]
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram HTML; return (plain text, entities) or raise EntityError like Telegram does."""
    out = _Out()
    stack: list[tuple[str, int, dict[str, str]]] = []  # tag, utf16 start, attributes
    entities: list[dict[str, Any]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "&":
            ent = _html_entity_at(text, i)
            if ent is None:
                raise EntityError(f'Character "&" at byte offset {_byte_offset(text, i)} is not a part of a '
                                  'supported HTML entity; replace it with "&amp;"')
            out.add(ent[0])
            i = ent[1]
            continue
        if c != "<":
            out.add(c)
            i += 1
            continue
        begin = i
        i += 1
        if i < n and text[i] == "/":  # end tag
            if not stack:
                raise EntityError(f"Unexpected end tag at byte offset {_byte_offset(text, begin)}")
            j = i + 1
            while j < n and not text[j].isspace() and text[j] != ">":
                j += 1
            end_name = text[i + 1:j]
            while j < n and text[j].isspace():
                j += 1
            if j >= n or text[j] != ">":
                raise EntityError(f"Unclosed end tag at byte offset {_byte_offset(text, begin)}")
            tag, start, attrs = stack.pop()
            if end_name and end_name.lower() != tag:
                raise EntityError(f'Unmatched end tag at byte offset {_byte_offset(text, begin)}, expected '
                                  f'"</{tag}>", found "</{end_name}>"')
            _html_entity_closed(entities, stack, tag, start, out.u16 - start, attrs)
            i = j + 1
            continue
        j = i
        while j < n and not text[j].isspace() and text[j] != ">":
            j += 1
        if j >= n:
            raise EntityError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
        tag = text[i:j].lower()
        if tag not in _HTML_TAGS:
            raise EntityError(f'Unsupported start tag "{tag}" at byte offset {_byte_offset(text, begin)}')
        attrs: dict[str, str] = {}
        while True:
            while j < n and text[j].isspace():
                j += 1
            if j >= n:
                raise EntityError(f'Unclosed start tag "{tag}" at byte offset {_byte_offset(text, begin)}')
            if text[j] == ">":
                break
            a = j
            while j < n and not text[j].isspace() and text[j] not in "=>":
                j += 1
            attr = text[a:j]
            if not attr:
                raise EntityError(f'Empty attribute name in the tag "{tag}" at byte offset '
                                  f"{_byte_offset(text, begin)}")
            while j < n and text[j].isspace():
                j += 1
            if j >= n or text[j] != "=":
                if tag == "blockquote" and attr == "expandable":
                    attrs[attr] = ""
                    continue
                raise EntityError(f'Expected equal sign in declaration of an attribute of the tag "{tag}" at byte '
                                  f"offset {_byte_offset(text, begin)}")
            j += 1
            while j < n and text[j].isspace():
                j += 1
            if j >= n:
                raise EntityError(f'Unclosed start tag "{tag}" at byte offset {_byte_offset(text, begin)}')
            if text[j] in "'\"":
                k = text.find(text[j], j + 1)
                if k < 0:
                    raise EntityError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
                value = _html_unescape_lenient(text[j + 1:k])
                j = k + 1
            else:
                a = j
                while j < n and (text[j].isalnum() or text[j] in ".-"):
                    j += 1
                value = text[a:j].lower()
                if j < n and not text[j].isspace() and text[j] != ">":
                    raise EntityError(f"Unexpected end of name token at byte offset {_byte_offset(text, a)}")
            attrs[attr.lower()] = value
        if tag == "span" and attrs.get("class") != "tg-spoiler":
            raise EntityError(f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(text, begin)}')
        stack.append((tag, out.u16, attrs))
        i = j + 1
    if stack:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.text(), entities


def _html_entity_closed(entities: list[dict[str, Any]], stack: list[tuple[str, int, dict[str, str]]], tag: str,
                        offset: int, length: int, attrs: dict[str, str]) -> None:
    kind = _HTML_TAGS[tag]
    if kind == "code" and stack and stack[-1][0] == "pre":
        lang = attrs.get("class", "")
        if lang.startswith("language-"):
            stack[-1][2]["language"] = lang[len("language-"):]
        return
    if length <= 0:
        return
    entity: dict[str, Any] = {"type": kind, "offset": offset, "length": length}
    if kind == "text_link":
        if not attrs.get("href"):
            return
        entity["url"] = attrs["href"]
    elif kind == "pre" and attrs.get("language"):
        entity["language"] = attrs["language"]
    elif kind == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    elif kind == "custom_emoji":
        entity["custom_emoji_id"] = attrs.get("emoji-id", "")
    entities.append(entity)


_MDV2_TYPE_NAMES = {
    "bold": "Bold", "italic": "Italic", "underline": "Underline", "strikethrough": "Strikethrough",
    "spoiler": "Spoiler", "code": "Code", "pre": "Pre", "text_link": "TextUrl", "custom_emoji": "CustomEmoji",
}


def parse_markdown_v2(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse MarkdownV2; return (plain text, entities) or raise EntityError like Telegram does."""
    out = _Out()
    entities: list[dict[str, Any]] = []
    stack: list[dict[str, Any]] = []
    n = len(text)
    i = 0
    expandable_quote = False

    def at(k: int) -> str:
        return text[k] if k < n else ""

    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and 0 < ord(text[i + 1]) <= 126:
            out.add(text[i + 1])
            i += 2
            continue
        in_code = bool(stack) and stack[-1]["type"] in ("code", "pre")
        if not in_code and (i == 0 or text[i - 1] == "\n"):  # blockquote markers at the start of a line
            if text.startswith("**>", i):
                expandable_quote = True
                i += 3
                continue
            if c == ">":
                i += 1
                continue
            expandable_quote = False
        reserved = "`" if in_code else "_*[]()~`>#+-=|{}.!"
        if c not in reserved:
            out.add(c)
            i += 1
            continue
        if expandable_quote and text.startswith("||", i) and at(i + 2) in ("", "\n"):
            i += 2
            continue
        top = stack[-1]["type"] if stack else None
        is_end = (
            (top == "bold" and c == "*")
            or (top == "italic" and c == "_" and at(i + 1) != "_")
            or (top == "code" and c == "`")
            or (top == "pre" and text.startswith("```", i))
            or (top in ("text_link", "custom_emoji") and c == "]")
            or (top == "underline" and text.startswith("__", i))
            or (top == "strikethrough" and c == "~")
            or (top == "spoiler" and text.startswith("||", i))
        )
        if not is_end:
            begin = i
            extra: dict[str, Any] = {}
            if c == "_":
                kind = "underline" if at(i + 1) == "_" else "italic"
                i += 2 if kind == "underline" else 1
            elif c == "*":
                kind, i = "bold", i + 1
            elif c == "~":
                kind, i = "strikethrough", i + 1
            elif c == "|" and at(i + 1) == "|":
                kind, i = "spoiler", i + 2
            elif c == "[":
                kind, i = "text_link", i + 1
            elif c == "!" and at(i + 1) == "[":
                kind, i = "custom_emoji", i + 2
            elif c == "`" and text.startswith("```", i):
                kind, i = "pre", i + 3
                k = i
                while k < n and not text[k].isspace() and text[k] != "`":
                    k += 1
                if i != k and k < n and text[k] != "`":
                    extra["language"] = text[i:k]
                    i = k
                if at(i) in ("\n", "\r") and at(i):
                    i += 2 if at(i + 1) in ("\n", "\r") and at(i + 1) and at(i + 1) != at(i) else 1
            elif c == "`":
                kind, i = "code", i + 1
            else:
                raise EntityError(f"Character '{c}' is reserved and must be escaped with the preceding '\\'")
            stack.append({"type": kind, "byte": _byte_offset(text, begin), "start": out.u16, "chars": out.chars,
                          **extra})
            continue
        entry = stack.pop()
        kind = entry["type"]
        entity: dict[str, Any] = {"type": kind, "offset": entry["start"], "length": out.u16 - entry["start"]}
        if kind in ("underline", "spoiler"):
            i += 2
        elif kind == "pre":
            i += 3
            if "language" in entry:
                entity["language"] = entry["language"]
        elif kind in ("text_link", "custom_emoji"):
            i += 1
            if at(i) != "(":
                if kind == "custom_emoji":
                    raise EntityError("Custom emoji entity must contain a tg://emoji URL")
                entity["url"] = out.text()[entry["chars"]:]  # Telegram uses the link text itself as the URL
            else:
                url_begin = i + 1
                i += 1
                url: list[str] = []
                while i < n and text[i] != ")":
                    if text[i] == "\\" and i + 1 < n and 0 < ord(text[i + 1]) <= 126:
                        url.append(text[i + 1])
                        i += 2
                        continue
                    url.append(text[i])
                    i += 1
                if i >= n:
                    raise EntityError(f"Can't find end of a URL at byte offset {_byte_offset(text, url_begin)}")
                i += 1
                if kind == "custom_emoji":
                    entity["custom_emoji_id"] = "".join(url).rpartition("id=")[2]
                else:
                    entity["url"] = "".join(url)
        else:
            i += 1
        if entity["length"] > 0 and (kind != "text_link" or entity.get("url")):
            entities.append(entity)
    if stack:
        entry = stack[-1]
        raise EntityError(f"Can't find end of {_MDV2_TYPE_NAMES[entry['type']]} entity at byte offset "
                          f"{entry['byte']}")
    return out.text(), entities


def parse_markdown(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse legacy Markdown; return (plain text, entities) or raise EntityError like Telegram does."""
    out = _Out()
    entities: list[dict[str, Any]] = []
    n = len(text)
    i = 0
    kinds = {"_": "italic", "*": "bold", "`": "code", "[": "text_link"}
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.add(text[i + 1])
            i += 2
            continue
        if c not in kinds:
            out.add(c)
            i += 1
            continue
        begin = i
        end_char = "]" if c == "[" else c
        i += 1
        is_pre = False
        language = ""
        if c == "`" and text.startswith("``", i):
            i += 2
            is_pre = True
            k = i
            while k < n and not text[k].isspace() and text[k] != "`":
                k += 1
            if i != k and k < n and text[k] != "`":
                language = text[i:k]
                i = k
            if i < n and text[i] in "\r\n":
                i += 2 if i + 1 < n and text[i + 1] in "\r\n" and text[i + 1] != text[i] else 1
        start = out.u16
        content_begin = i
        while i < n and (text[i] != end_char or (is_pre and not text.startswith("``", i + 1))):
            out.add(text[i])
            i += 1
        if i >= n:
            raise EntityError(f"Can't find end of the entity starting at byte offset {_byte_offset(text, begin)}")
        entity: dict[str, Any] = {"type": "pre" if is_pre else kinds[c], "offset": start, "length": out.u16 - start}
        if c == "[":
            if i + 1 < n and text[i + 1] == "(":
                i += 2
                url_begin = i
                while i < n and text[i] != ")":
                    i += 1
                entity["url"] = text[url_begin:i]
            else:
                entity["url"] = text[content_begin:i]
        if is_pre:
            i += 2
            if language:
                entity["language"] = language
        i += 1
        if entity["length"] > 0:
            entities.append(entity)
    return out.text(), entities


def parse_formatted(text: str, parse_mode: str | None) -> tuple[str, list[dict[str, Any]]]:
    """``parse_mode`` is None or one of "HTML", "Markdown", "MarkdownV2" (canonical spelling)."""
    if parse_mode == "HTML":
        return parse_html(text)
    if parse_mode == "MarkdownV2":
        return parse_markdown_v2(text)
    if parse_mode == "Markdown":
        return parse_markdown(text)
    return text, []


def _strip_text(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Telegram trims leading and trailing whitespace and shifts entities accordingly."""
    stripped = text.strip()
    if stripped == text:
        return text, sorted(entities, key=lambda e: (e["offset"], -e["length"]))
    lead = utf16_len(text[:len(text) - len(text.lstrip())])
    total = utf16_len(stripped)
    result = []
    for e in entities:
        start = max(e["offset"] - lead, 0)
        end = min(e["offset"] + e["length"] - lead, total)
        if end > start:
            result.append({**e, "offset": start, "length": end - start})
    return stripped, sorted(result, key=lambda e: (e["offset"], -e["length"]))


_COMMAND = re.compile(r"(?<![^\s(])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_@/])")
_MENTION = re.compile(r"(?<![A-Za-z0-9_@])@[A-Za-z][A-Za-z0-9_]{3,31}(?![A-Za-z0-9_])")


def auto_entities(text: str) -> list[dict[str, Any]]:
    """bot_command and mention entities as a Telegram client would produce them (offsets in UTF-16 units)."""
    found: list[tuple[int, int, str]] = []
    for m in _COMMAND.finditer(text):
        found.append((m.start(), m.end(), "bot_command"))
    for m in _MENTION.finditer(text):
        if not any(s <= m.start() < e for s, e, _ in found):
            found.append((m.start(), m.end(), "mention"))
    found.sort()
    return [{"type": kind, "offset": utf16_len(text[:s]), "length": utf16_len(text[s:e])} for s, e, kind in found]


# --------------------------------------------------------------------------------------------------------------------
# Request parsing
# --------------------------------------------------------------------------------------------------------------------


def _parse_multipart(body: bytes, content_type: str) -> dict[str, Any]:
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise ValueError("multipart boundary is missing")
    boundary = b"--" + m.group(1).encode()
    result: dict[str, Any] = {}
    for part in body.split(boundary)[1:]:
        if part.startswith(b"--"):
            break
        if part.startswith(b"\r\n"):
            part = part[2:]
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        if data.endswith(b"\r\n"):
            data = data[:-2]
        headers = head.decode("utf-8", "replace")
        disposition = re.search(r"(?im)^content-disposition:(.*)$", headers)
        if not disposition:
            continue
        name = re.search(r'\bname="((?:[^"\\]|\\.)*)"', disposition.group(1))
        if not name:
            continue
        filename = re.search(r'\bfilename="((?:[^"\\]|\\.)*)"', disposition.group(1))
        ctype = re.search(r"(?im)^content-type:\s*(.*?)\s*$", headers)
        if filename:
            result[name.group(1)] = UploadedFile(filename.group(1), data, ctype.group(1) if ctype else None)
        else:
            result[name.group(1)] = data.decode("utf-8")
    return result


async def _read_params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    ctype = request.headers.get("content-type", "")
    if not body:
        return params
    if ctype.startswith("application/json"):
        data = json.loads(body.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("JSON body must be an object")
        params.update(data)
    elif ctype.startswith("multipart/form-data"):
        params.update(_parse_multipart(body, ctype))
    else:  # urlencoded, or anything else that looks like it
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    return params


def _loggable(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, UploadedFile):
            out[key] = {"filename": value.filename, "size": len(value.content)}
        elif key in JSON_PARAMS and isinstance(value, str):
            try:
                out[key] = json.loads(value)
            except ValueError:
                out[key] = value
        else:
            out[key] = value
    return out


def _p_int(p: dict[str, Any], key: str, *, required: bool = False, default: int | None = None,
           error: str | None = None) -> int | None:
    value = p.get(key)
    if value is None or value == "":
        if required:
            raise ApiError(400, error or f"Bad Request: {key} is empty")
        return default
    if isinstance(value, bool):
        raise ApiError(400, error or f"Bad Request: invalid {key} specified")
    if isinstance(value, int):
        return value
    try:
        as_float = float(value)
        if not as_float.is_integer():
            raise ValueError
        return int(as_float)
    except (TypeError, ValueError):
        raise ApiError(400, error or f"Bad Request: invalid {key} specified") from None


def _p_str(p: dict[str, Any], key: str) -> str | None:
    value = p.get(key)
    if value is None or isinstance(value, UploadedFile):
        return None
    return value if isinstance(value, str) else str(value)


def _p_bool(p: dict[str, Any], key: str, default: bool = False) -> bool:
    value = p.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1")


def _p_json(p: dict[str, Any], key: str, what: str | None = None) -> Any:
    value = p.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise ApiError(400, f"Bad Request: can't parse {what or key} JSON object",
                           violation="bad_json") from None
    return value


def _json_response(code: int, payload: dict[str, Any]) -> Response:
    return JSONResponse(payload, status_code=code)


# --------------------------------------------------------------------------------------------------------------------
# A uvicorn server in a daemon thread (also handy for a test's own webhook receiver)
# --------------------------------------------------------------------------------------------------------------------


class ThreadedServer:
    """Runs an ASGI app with uvicorn on 127.0.0.1 (free port) in a daemon thread with its own event loop."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0,
                 on_start: Callable[[], Any] | None = None, on_stop: Callable[[], Any] | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.loop: asyncio.AbstractEventLoop | None = None
        self._on_start = on_start  # coroutine functions run in the server loop
        self._on_stop = on_stop
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 15.0) -> None:
        if self._thread is not None:
            raise RuntimeError("server already started")
        # proto=IPPROTO_TCP makes asyncio set TCP_NODELAY on accepted connections; without it every keep-alive
        # response waits ~40 ms (Nagle's algorithm against the client's delayed ACK).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart may reuse the port
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, lifespan="off", log_level="warning", log_config=None, access_log=False,
                                ws="none", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, args=(sock,), name=f"fake-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"server thread died: {self._error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start in time")
            time.sleep(0.005)

    def _run(self, sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.loop = loop
        try:
            loop.run_until_complete(self._serve(sock))
        except BaseException as exc:  # reported by start()
            self._error = exc
            log.exception("fake server crashed")
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            sock.close()

    async def _serve(self, sock: socket.socket) -> None:
        assert self._server is not None
        if self._on_start:
            await self._on_start()
        try:
            await self._server.serve(sockets=[sock])
        finally:
            if self._on_stop:
                await self._on_stop()

    def call_soon(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` in the server's loop (from any thread); ignored once the loop is gone."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn)

    def stop(self, timeout: float = 15.0) -> None:
        if self._thread is None:
            return
        server = self._server

        def _exit() -> None:
            if server is not None:
                server.should_exit = True

        self.call_soon(_exit)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("fake server thread did not stop within %ss", timeout)
        self._thread = None


# --------------------------------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------------------------------


class Waiting:
    """Waiting for a fake's records: a coroutine inside a running event loop (async tests), blocking otherwise.

    A subclass provides ``_timeout_message(what, timeout)`` describing its last calls.
    """

    def _timeout_message(self, what: str | None, timeout: float) -> str:
        raise NotImplementedError

    def _wait(self, check: Callable[[], Any], timeout: float, what: str | None) -> Any:
        if _loop_running():
            return self._wait_async(check, timeout, what)
        return self._wait_sync(check, timeout, what)

    def _checker(self, predicate: Callable[..., Any]) -> Callable[[], Any]:
        try:
            params = inspect.signature(predicate).parameters.values()
            wants_fake = any(prm.default is prm.empty and prm.kind in (prm.POSITIONAL_ONLY, prm.POSITIONAL_OR_KEYWORD)
                             for prm in params)
        except (TypeError, ValueError):
            wants_fake = False
        return (lambda: predicate(self)) if wants_fake else predicate

    async def _wait_async(self, check: Callable[[], Any], seconds: float, what: str | None) -> Any:
        deadline = time.monotonic() + seconds
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(self._timeout_message(what, seconds))
            await asyncio.sleep(0.01)

    def _wait_sync(self, check: Callable[[], Any], timeout: float, what: str | None) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(self._timeout_message(what, timeout))
            time.sleep(0.01)


class FakeTelegram(Waiting):
    """A fake Telegram Bot API server; see the module docstring for usage."""

    def __init__(self, token: str = DEFAULT_TOKEN, *, username: str = BOT_USERNAME, first_name: str = BOT_FIRST_NAME,
                 privacy_mode: bool = True, strict_chats: bool = False, enforce_rate_limits: bool = False) -> None:
        m = re.fullmatch(r"(\d+):[A-Za-z0-9_-]+", token)
        if not m:
            raise ValueError("token must look like a Telegram token, e.g. '123456:ABC-def'")
        self.token = token
        self.bot_id = int(m.group(1))
        self.username = username
        self.first_name = first_name
        self.privacy_mode = privacy_mode
        self.strict_chats = strict_chats
        self.enforce_rate_limits = enforce_rate_limits

        self._lock = threading.RLock()
        self._server = ThreadedServer(self._build_app(), on_start=self._on_start, on_stop=self._on_stop)
        self._event: asyncio.Event | None = None
        self._closing = False
        self._webhook_task: asyncio.Task[None] | None = None

        # Recordings (read them freely; they only grow, apart from clear_records()).
        self.sent: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.violations: list[dict[str, Any]] = []
        self.rate_violations: list[dict[str, Any]] = []
        self.injected: list[dict[str, Any]] = []
        self.callback_answers: list[dict[str, Any]] = []
        self.chat_actions: list[dict[str, Any]] = []
        self.deleted: list[dict[str, Any]] = []
        self.undelivered: list[dict[str, Any]] = []
        self.webhook_deliveries: list[dict[str, Any]] = []

        # State.
        self._pending: list[dict[str, Any]] = []
        self._next_update_id = 100000001
        self._allowed_updates: list[str] | None = None
        self._poll_generation = 0
        self._webhook: dict[str, Any] | None = None
        self._failures: list[_Failure] = []
        self._chats: dict[int, dict[str, Any]] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._bot_status: dict[int, str] = {}
        self._member_status: dict[tuple[int, int], str] = {}
        self._message_ids: dict[int, int] = {}
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._callbacks: dict[str, dict[str, Any]] = {}
        self._next_callback = 4000000000000000001
        self._commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self._files: dict[str, dict[str, Any]] = {}
        self._polls: dict[str, dict[str, Any]] = {}
        self._next_poll = 5000000000000000001
        self._next_file = 1
        self._global_times: deque[float] = deque()
        self._group_times: dict[int, deque[float]] = {}
        self._settings: dict[str, Any] = {}

        self._handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "getme": self._api_get_me,
            "getupdates": self._api_get_updates,
            "setwebhook": self._api_set_webhook,
            "deletewebhook": self._api_delete_webhook,
            "getwebhookinfo": self._api_get_webhook_info,
            "setmycommands": self._api_set_my_commands,
            "getmycommands": self._api_get_my_commands,
            "deletemycommands": self._api_delete_my_commands,
            "sendmessage": self._api_send_message,
            "sendphoto": self._api_send_photo,
            "senddocument": self._api_send_document,
            "sendpoll": self._api_send_poll,
            "stoppoll": self._api_stop_poll,
            "editmessagetext": self._api_edit_message_text,
            "editmessagecaption": self._api_edit_message_caption,
            "editmessagereplymarkup": self._api_edit_message_reply_markup,
            "deletemessage": self._api_delete_message,
            "answercallbackquery": self._api_answer_callback_query,
            "sendchataction": self._api_send_chat_action,
            "getchat": self._api_get_chat,
            "getchatmember": self._api_get_chat_member,
            "getchatadministrators": self._api_get_chat_administrators,
            "leavechat": self._api_leave_chat,
            "getfile": self._api_get_file,
            "close": lambda p: True,
            "logout": lambda p: True,
        }
        for name in ("setMyDescription", "setMyShortDescription", "setMyName", "setChatMenuButton",
                     "setMyDefaultAdministratorRights"):
            self._handlers[name.lower()] = self._make_setting_handler(name)

    # ---------------------------------------------------------------------------------------------- lifecycle

    def start(self) -> FakeTelegram:
        self._closing = False
        self._server.start()
        return self

    def stop(self) -> None:
        def _shutdown() -> None:
            self._closing = True
            self._wake()

        self._server.call_soon(_shutdown)
        self._server.stop()

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeTelegram:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def base_url(self) -> str:
        """For PTB's ``base_url`` (PTB requests ``{base_url}{token}/{method}``)."""
        return f"{self._server.url}/bot"

    @property
    def base_file_url(self) -> str:
        """For PTB's ``base_file_url`` (downloads from ``{base_file_url}{token}/{file_path}``)."""
        return f"{self._server.url}/file/bot"

    @property
    def api_url(self) -> str:
        """``{base_url}{token}``: append ``/sendMessage`` etc. to call the fake directly."""
        return f"{self.base_url}{self.token}"

    async def _on_start(self) -> None:
        self._event = asyncio.Event()
        self._webhook_task = asyncio.create_task(self._webhook_worker())

    async def _on_stop(self) -> None:
        self._closing = True
        if self._webhook_task:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._webhook_task

    def _wake(self) -> None:
        """(server loop) Wake every long poll and the webhook worker."""
        event = self._event
        self._event = asyncio.Event()
        if event is not None:
            event.set()

    def _notify(self) -> None:
        self._server.call_soon(self._wake)

    def __repr__(self) -> str:
        return f"<FakeTelegram {self.base_url} sent={len(self.sent)} violations={len(self.violations)}>"

    # ---------------------------------------------------------------------------------------------- HTTP layer

    def _build_app(self) -> Starlette:
        return Starlette(routes=[
            Route("/bot{token}/{method}", self._api_endpoint, methods=["GET", "POST"]),
            Route("/file/bot{token}/{path:path}", self._file_endpoint, methods=["GET"]),
            Route("/{rest:path}", self._not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ])

    async def _not_found(self, request: Request) -> Response:
        return _json_response(404, {"ok": False, "error_code": 404, "description": "Not Found"})

    async def _file_endpoint(self, request: Request) -> Response:
        path = request.path_params["path"]
        if request.path_params["token"] != self.token:
            return _json_response(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        with self._lock:
            entry = next((f for f in self._files.values() if f["file_path"] == path), None)
        if entry is None:
            return _json_response(404, {"ok": False, "error_code": 404, "description": "Not Found: file not found"})
        return Response(entry["content"], media_type="application/octet-stream")

    async def _api_endpoint(self, request: Request) -> Response:
        method = request.path_params["method"]
        started = time.time()
        try:
            params = await _read_params(request)
        except (ValueError, UnicodeDecodeError) as exc:
            self._record_call(method, {}, 400, f"Bad Request: {exc}", started)
            return _json_response(400, {"ok": False, "error_code": 400, "description": f"Bad Request: {exc}"})
        if request.path_params["token"] != self.token:
            self._record_call(method, _loggable(params), 401, "Unauthorized", started)
            return _json_response(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        key = method.lower()
        try:
            self._check_injected(method, key, params)
            handler = self._handlers.get(key)
            if handler is None:
                raise ApiError(404, "Not Found", violation="unsupported_method")
            result = handler(params)
            if inspect.isawaitable(result):
                result = await result
        except ApiError as err:
            payload: dict[str, Any] = {"ok": False, "error_code": err.code, "description": err.description}
            if err.retry_after is not None:
                payload["parameters"] = {"retry_after": err.retry_after}
            logged = _loggable(params)
            if err.violation:
                with self._lock:
                    self.violations.append({"method": method, "kind": err.violation, "description": err.description,
                                            "params": logged, "time": time.time()})
                log.warning("Telegram would reject %s: %s", method, err.description)
            self._record_call(method, logged, err.code, err.description, started)
            return _json_response(err.code, payload)
        self._record_call(method, _loggable(params), 200, None, started)
        return _json_response(200, {"ok": True, "result": result})

    def _record_call(self, method: str, params: dict[str, Any], status: int, description: str | None,
                     started: float) -> None:
        with self._lock:
            self.calls.append({"method": method, "params": params, "status": status, "description": description,
                               "time": started})

    def _check_injected(self, method: str, key: str, params: dict[str, Any]) -> None:
        with self._lock:
            for failure in self._failures:
                if failure.method not in (key, "*"):
                    continue
                if failure.chat_id is not None and str(params.get("chat_id")) != failure.chat_id:
                    continue
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                self.injected.append({"method": method, "status": failure.status, "chat_id": params.get("chat_id"),
                                      "description": failure.description, "time": time.time()})
                raise ApiError(failure.status, failure.description, retry_after=failure.retry_after)

    # ---------------------------------------------------------------------------------------------- failures

    def fail(self, method: str, status: int, times: int | None = 1, retry_after: int | None = None,
             chat_id: int | str | None = None, description: str | None = None) -> None:
        """Make the next ``times`` calls of ``method`` ("*" = any; None times = until clear_failures) fail.

        429 answers carry ``parameters.retry_after`` (default 1 s); descriptions default to Telegram's usual ones
        (403 "Forbidden: bot was blocked by the user", 500 "Internal Server Error", ...).
        """
        if status == 429:
            retry_after = 1 if retry_after is None else retry_after
            description = description or f"Too Many Requests: retry after {retry_after}"
        description = description or ERROR_DESCRIPTIONS.get(status, f"Error {status}")
        with self._lock:
            self._failures.append(_Failure(method.lower().replace("_", ""), status, times, retry_after,
                                           None if chat_id is None else str(chat_id), description))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    # ---------------------------------------------------------------------------------------------- bot & chats

    @property
    def bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": self.first_name, "username": self.username}

    def _user(self, user_id: int, first_name: str, last_name: str | None, username: str | None,
              language_code: str | None) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self._users[user_id] = user
        return user

    def _chat(self, chat_id: int | None, chat_type: str, user: dict[str, Any] | None,
              title: str | None = None) -> dict[str, Any]:
        if chat_type == "private":
            assert user is not None
            cid = user["id"] if chat_id is None else chat_id
            chat = {"id": cid, "type": "private", "first_name": user["first_name"]}
            for key in ("last_name", "username"):
                if key in user:
                    chat[key] = user[key]
        elif chat_type in ("group", "supergroup", "channel"):
            cid = chat_id if chat_id is not None else (DEFAULT_GROUP_ID if chat_type == "group"
                                                       else DEFAULT_SUPERGROUP_ID)
            known = self._chats.get(cid, {})
            chat = {"id": cid, "type": chat_type, "title": title or known.get("title") or "测试群"}
        else:
            raise ValueError(f"unknown chat type {chat_type!r}")
        self._chats[cid] = chat
        return chat

    def add_chat(self, chat_id: int, chat_type: str = "private", *, title: str | None = None,
                 first_name: str = "Tester", username: str | None = None) -> dict[str, Any]:
        """Make a chat known (needed with ``strict_chats=True`` before the bot may write to it)."""
        with self._lock:
            user = self._user(chat_id, first_name, None, username, None) if chat_type == "private" else None
            return dict(self._chat(chat_id, chat_type, user, title))

    def set_bot_status(self, chat_id: int, status: str) -> None:
        """Set the bot's membership in a chat without an update ("kicked" in a private chat = blocked)."""
        if status not in MEMBER_STATUSES:
            raise ValueError(f"unknown status {status!r}")
        with self._lock:
            self._bot_status[chat_id] = status

    def set_member_status(self, chat_id: int, user_id: int, status: str, *, first_name: str = "Tester") -> None:
        """A user's membership in a group, as getChatMember and getChatAdministrators answer (default: member)."""
        if status not in MEMBER_STATUSES:
            raise ValueError(f"unknown status {status!r}")
        with self._lock:
            if user_id not in self._users:
                self._user(user_id, first_name, None, None, "zh-hans")
            self._member_status[(chat_id, user_id)] = status

    def _resolve_chat(self, p: dict[str, Any], key: str = "chat_id", *, sending: bool = True) -> dict[str, Any]:
        raw = p.get(key)
        if raw is None or raw == "":
            raise ApiError(400, f"Bad Request: {key} is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            chat = next((c for c in self._chats.values() if c.get("username", "").lower() == raw[1:].lower()), None)
            if chat is None:
                raise ApiError(400, "Bad Request: chat not found")
        else:
            cid = _p_int(p, key, error="Bad Request: chat not found")
            assert cid is not None
            chat = self._chats.get(cid)
            if chat is None:
                if self.strict_chats or cid == 0:
                    raise ApiError(400, "Bad Request: chat not found")
                if cid > 0:
                    chat = {"id": cid, "type": "private", "first_name": f"User {cid}"}
                elif str(cid).startswith("-100"):
                    chat = {"id": cid, "type": "supergroup", "title": f"Group {cid}"}
                else:
                    chat = {"id": cid, "type": "group", "title": f"Group {cid}"}
                self._chats[cid] = chat
        if sending:
            status = self._bot_status.get(chat["id"])
            kind = {"private": "", "group": "group", "supergroup": "supergroup", "channel": "channel"}[chat["type"]]
            if status == "kicked":
                raise ApiError(403, "Forbidden: bot was blocked by the user" if not kind
                               else f"Forbidden: bot was kicked from the {kind} chat")
            if status == "left" and kind:
                raise ApiError(403, f"Forbidden: bot is not a member of the {kind} chat")
        return chat

    def _new_message_id(self, chat_id: int) -> int:
        self._message_ids[chat_id] = self._message_ids.get(chat_id, 0) + 1
        return self._message_ids[chat_id]

    def _store(self, message: dict[str, Any]) -> dict[str, Any]:
        chat_id, mid = message["chat"]["id"], message["message_id"]
        self._messages[(chat_id, mid)] = message
        self._message_ids[chat_id] = max(self._message_ids.get(chat_id, 0), mid)
        return message

    def _bot_message(self, chat: dict[str, Any], **content: Any) -> dict[str, Any]:
        message = {"message_id": self._new_message_id(chat["id"]), "from": self.bot_user, "chat": dict(chat),
                   "date": int(time.time()), **{k: v for k, v in content.items() if v is not None}}
        return self._store(message)

    def _is_bot_message(self, message: dict[str, Any]) -> bool:
        return message.get("from", {}).get("id") == self.bot_id

    # ---------------------------------------------------------------------------------------------- validation

    def _parse_mode(self, value: Any) -> str | None:
        if value is None or value == "":
            return None
        mode = PARSE_MODES.get(str(value).lower())
        if mode is None:
            raise ApiError(400, "Bad Request: unsupported parse_mode", violation="bad_parse_mode")
        return mode

    def _format(self, p: dict[str, Any], text_key: str, mode_key: str, entities_key: str, *, limit: int,
                required: bool) -> tuple[str | None, list[dict[str, Any]], str | None]:
        """Return (plain text, entities, canonical parse mode) after Telegram's checks."""
        raw = _p_str(p, text_key)
        mode = self._parse_mode(p.get(mode_key))
        entities = _p_json(p, entities_key)
        if raw is None or raw == "":
            if required:
                raise ApiError(400, "Bad Request: message text is empty", violation="text_empty")
            return None, [], mode
        if entities is not None:
            if not isinstance(entities, list):
                raise ApiError(400, f"Bad Request: can't parse {entities_key} JSON object", violation="bad_json")
            plain, ents = raw, list(entities)
        else:
            try:
                plain, ents = parse_formatted(raw, mode)
            except EntityError as exc:
                raise ApiError(400, f"Bad Request: can't parse entities: {exc}",
                               violation="cant_parse_entities") from None
        plain, ents = _strip_text(plain, ents)
        if not plain:
            if required:
                raise ApiError(400, "Bad Request: message text is empty", violation="text_empty")
            return None, [], mode
        if len(plain) > limit:
            if text_key == "text":
                raise ApiError(400, "Bad Request: message is too long", violation="text_too_long")
            raise ApiError(400, "Bad Request: message caption is too long", violation="caption_too_long")
        return plain, ents, mode

    def _check_markup(self, markup: Any) -> None:
        if markup is None:
            return
        if not isinstance(markup, dict):
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object",
                           violation="bad_reply_markup")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise ApiError(400, 'Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup should be an '
                               "Array of Arrays", violation="bad_reply_markup")
            if sum(len(r) for r in rows) > MAX_INLINE_BUTTONS:
                raise ApiError(400, "Bad Request: too many inline keyboard buttons (at most 100)",
                               violation="too_many_buttons")
            for row in rows:
                if len(row) > MAX_INLINE_ROW:
                    raise ApiError(400, "Bad Request: too many buttons in an inline keyboard row (at most 8)",
                                   violation="row_too_long")
                for button in row:
                    self._check_inline_button(button)
        elif "keyboard" in markup:
            rows = markup["keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise ApiError(400, 'Bad Request: field "keyboard" of the ReplyKeyboardMarkup should be an Array of '
                               "Arrays", violation="bad_reply_markup")
            if sum(len(r) for r in rows) > MAX_REPLY_BUTTONS or any(len(r) > MAX_REPLY_ROW for r in rows):
                raise ApiError(400, "Bad Request: reply markup is too long", violation="too_many_buttons")
            for row in rows:
                for button in row:
                    text = button if isinstance(button, str) else (button or {}).get("text")
                    if not isinstance(text, str) or not text.strip():
                        raise ApiError(400, "Bad Request: keyboard button text must be non-empty",
                                       violation="empty_button_text")
        elif not ("remove_keyboard" in markup or "force_reply" in markup):
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object",
                           violation="bad_reply_markup")

    def _check_inline_button(self, button: Any) -> None:
        if not isinstance(button, dict):
            raise ApiError(400, "Bad Request: can't parse inline keyboard button: InlineKeyboardButton must be an "
                           "Object", violation="bad_reply_markup")
        text = button.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "Bad Request: inline keyboard button text must be non-empty",
                           violation="empty_button_text")
        actions = [a for a in INLINE_BUTTON_ACTIONS if a in button]
        if not actions:
            raise ApiError(400, "Bad Request: text buttons are unallowed in the inline keyboard",
                           violation="button_without_action")
        if len(actions) > 1:
            raise ApiError(400, "Bad Request: can't parse inline keyboard button: exactly one of the optional "
                           f"fields must be used, got {actions}", violation="bad_reply_markup")
        if "callback_data" in button:
            data = button["callback_data"]
            if not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID", violation="callback_data_invalid")
        if "url" in button:
            url = button["url"]
            if not isinstance(url, str) or not url or any(ch.isspace() for ch in url):
                raise ApiError(400, f"Bad Request: inline keyboard button URL '{url}' is invalid: Wrong HTTP URL",
                               violation="bad_button_url")

    def _rate_check(self, chat: dict[str, Any], method: str) -> None:
        now = time.monotonic()
        problems: list[tuple[str, deque[float], int, float]] = []
        g_limit, g_window = GLOBAL_RATE
        while self._global_times and now - self._global_times[0] >= g_window:
            self._global_times.popleft()
        if len(self._global_times) + 1 > g_limit:
            problems.append(("global", self._global_times, g_limit, g_window))
        group_times = None
        if chat["type"] in ("group", "supergroup"):
            c_limit, c_window = GROUP_RATE
            group_times = self._group_times.setdefault(chat["id"], deque())
            while group_times and now - group_times[0] >= c_window:
                group_times.popleft()
            if len(group_times) + 1 > c_limit:
                problems.append(("group", group_times, c_limit, c_window))
        for scope, times, limit, window in problems:
            self.rate_violations.append({"scope": scope, "chat_id": chat["id"], "method": method,
                                         "count": len(times) + 1, "limit": limit, "window": window,
                                         "enforced": self.enforce_rate_limits, "time": time.time()})
        if problems and self.enforce_rate_limits:
            retry = max(math.ceil(w - (now - t[0])) for _, t, _, w in problems)
            raise ApiError(429, f"Too Many Requests: retry after {retry}", retry_after=max(retry, 1))
        self._global_times.append(now)
        if group_times is not None:
            group_times.append(now)

    def _reply_to(self, p: dict[str, Any], chat: dict[str, Any]) -> dict[str, Any] | None:
        reply = _p_json(p, "reply_parameters")
        if isinstance(reply, dict):
            target_id, allow = reply.get("message_id"), bool(reply.get("allow_sending_without_reply"))
            target_chat = reply.get("chat_id", chat["id"])
        else:
            target_id, allow = _p_int(p, "reply_to_message_id"), _p_bool(p, "allow_sending_without_reply")
            target_chat = chat["id"]
        if target_id is None:
            return None
        try:
            target = self._messages.get((int(target_chat), int(target_id)))
        except (TypeError, ValueError):
            target = None
        if target is None:
            if allow:
                return None
            raise ApiError(400, "Bad Request: message to be replied not found")
        return {k: v for k, v in target.items() if k != "reply_to_message"}

    def _record_sent(self, method: str, chat_id: int, message: dict[str, Any] | None, p: dict[str, Any], *,
                     text: str | None = None, plain_text: str | None = None, caption: str | None = None,
                     parse_mode: str | None = None, reply_markup: Any = None, **extra: Any) -> None:
        self.sent.append({
            "method": method, "chat_id": chat_id, "message_id": message["message_id"] if message else None,
            "text": text, "plain_text": plain_text, "caption": caption, "parse_mode": parse_mode,
            "reply_markup": copy.deepcopy(reply_markup), "time": time.time(), "params": _loggable(p), **extra,
        })

    # ---------------------------------------------------------------------------------------------- API methods

    def _api_get_me(self, p: dict[str, Any]) -> dict[str, Any]:
        return {**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": not self.privacy_mode,
                "supports_inline_queries": False, "can_connect_to_business": False, "has_main_web_app": False}

    def _allowed(self, allowed: list[str] | None) -> set[str]:
        if not allowed:
            return set(UPDATE_TYPES) - NOT_BY_DEFAULT
        return set(allowed)

    def _drop_disallowed(self, allowed: set[str]) -> None:
        keep = []
        for update in self._pending:
            kind = _update_type(update)
            if kind in allowed:
                keep.append(update)
            else:
                self.undelivered.append({"update": update, "reason": f"{kind} not in allowed_updates"})
        self._pending = keep

    async def _api_get_updates(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        offset = _p_int(p, "offset", default=0) or 0
        limit = min(max(_p_int(p, "limit", default=100) or 100, 1), 100)
        try:
            timeout = max(float(p.get("timeout") or 0), 0.0)
        except ValueError:
            raise ApiError(400, "Bad Request: invalid timeout specified") from None
        allowed = _p_json(p, "allowed_updates")
        with self._lock:
            if self._webhook is not None:
                raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; use "
                               "deleteWebhook to delete the webhook first")
            if allowed is not None:
                self._allowed_updates = list(allowed)
            self._poll_generation += 1
            generation = self._poll_generation
            if offset > 0:
                self._pending = [u for u in self._pending if u["update_id"] >= offset]
            elif offset < 0:
                self._pending = self._pending[offset:]
        self._wake()  # an older long poll is now terminated
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self._lock:
                if generation != self._poll_generation:
                    raise ApiError(409, ERROR_DESCRIPTIONS[409])
                self._drop_disallowed(self._allowed(self._allowed_updates))
                batch = copy.deepcopy(self._pending[:limit])
            remaining = deadline - loop.time()
            if batch or self._closing or remaining <= 0:
                return batch
            event = self._event
            assert event is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    def _api_set_webhook(self, p: dict[str, Any]) -> bool:
        url = _p_str(p, "url") or ""
        with self._lock:
            if not url:
                self._webhook = None
                return True
            if not re.match(r"https?://", url):
                raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook",
                               violation="bad_webhook")
            secret = _p_str(p, "secret_token")
            if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
                raise ApiError(400, "Bad Request: secret token contains unallowed characters",
                               violation="bad_webhook")
            allowed = _p_json(p, "allowed_updates")
            if _p_bool(p, "drop_pending_updates"):
                self._pending.clear()
            self._webhook = {"url": url, "secret_token": secret,
                             "allowed_updates": list(allowed) if allowed is not None else None,
                             "max_connections": _p_int(p, "max_connections", default=40),
                             "ip_address": _p_str(p, "ip_address"), "last_error_date": None,
                             "last_error_message": None}
            if allowed is not None:
                self._allowed_updates = list(allowed)
        self._wake()
        return True

    def _api_delete_webhook(self, p: dict[str, Any]) -> bool:
        with self._lock:
            self._webhook = None
            if _p_bool(p, "drop_pending_updates"):
                self._pending.clear()
        return True

    def _api_get_webhook_info(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            info: dict[str, Any] = {"url": "", "has_custom_certificate": False,
                                    "pending_update_count": len(self._pending)}
            wh = self._webhook
            if wh:
                info.update(url=wh["url"], max_connections=wh["max_connections"], ip_address="127.0.0.1")
                if wh["allowed_updates"] is not None:
                    info["allowed_updates"] = wh["allowed_updates"]
                if wh["last_error_date"]:
                    info.update(last_error_date=wh["last_error_date"], last_error_message=wh["last_error_message"])
            return info

    @staticmethod
    def _scope_key(p: dict[str, Any]) -> tuple[str, str]:
        scope = _p_json(p, "scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), _p_str(p, "language_code") or ""

    def _api_set_my_commands(self, p: dict[str, Any]) -> bool:
        commands = _p_json(p, "commands")
        if not isinstance(commands, list):
            raise ApiError(400, "Bad Request: can't parse commands JSON object", violation="bad_json")
        if len(commands) > 100:
            raise ApiError(400, "Bad Request: too many commands (at most 100)", violation="invalid_command")
        clean = []
        for cmd in commands:
            name = cmd.get("command") if isinstance(cmd, dict) else None
            desc = cmd.get("description") if isinstance(cmd, dict) else None
            if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID", violation="invalid_command")
            if not isinstance(desc, str) or not 1 <= len(desc.strip()) <= 256:
                raise ApiError(400, "Bad Request: command description must be 1-256 characters long",
                               violation="invalid_command")
            clean.append({"command": name, "description": desc})
        with self._lock:
            self._commands[self._scope_key(p)] = clean
        return True

    def _api_get_my_commands(self, p: dict[str, Any]) -> list[dict[str, str]]:
        with self._lock:
            return copy.deepcopy(self._commands.get(self._scope_key(p), []))

    def _api_delete_my_commands(self, p: dict[str, Any]) -> bool:
        with self._lock:
            self._commands.pop(self._scope_key(p), None)
        return True

    def _make_setting_handler(self, name: str) -> Callable[[dict[str, Any]], bool]:
        def handler(p: dict[str, Any]) -> bool:
            with self._lock:
                self._settings[name] = _loggable(p)
            return True

        return handler

    def _api_send_message(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            plain, entities, mode = self._format(p, "text", "parse_mode", "entities", limit=MAX_TEXT, required=True)
            markup = _p_json(p, "reply_markup", "reply keyboard markup")
            self._check_markup(markup)
            chat = self._resolve_chat(p)  # after the content checks, so violations are always seen
            reply = self._reply_to(p, chat)
            self._rate_check(chat, "sendMessage")
            message = self._bot_message(chat, text=plain, entities=entities or None, reply_to_message=reply,
                                        reply_markup=_inline_only(markup))
            self._record_sent("sendMessage", chat["id"], message, p, text=_p_str(p, "text"), plain_text=plain,
                              parse_mode=mode, reply_markup=markup)
            return message

    def _resolve_upload(self, p: dict[str, Any], key: str) -> tuple[str, bytes | None]:
        """Return (file_id, content) for a file parameter (upload, attach://, file_id or URL)."""
        value = p.get(key)
        if isinstance(value, str) and value.startswith("attach://"):
            value = p.get(value[len("attach://"):])
        if isinstance(value, UploadedFile):
            file_id = f"fake-file-{self._next_file}"
            self._next_file += 1
            folder = "photos" if key == "photo" else "documents"
            self.add_file(file_id, value.content, f"{folder}/file_{self._next_file - 1}")
            return file_id, value.content
        if isinstance(value, str) and value:
            if value in self._files:
                return value, self._files[value]["content"]
            if re.match(r"https?://", value):
                return value, None
        raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")

    def _api_send_photo(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            file_id, content = self._resolve_upload(p, "photo")
            caption, entities, mode = self._format(p, "caption", "parse_mode", "caption_entities",
                                                   limit=MAX_CAPTION, required=False)
            markup = _p_json(p, "reply_markup", "reply keyboard markup")
            self._check_markup(markup)
            chat = self._resolve_chat(p)  # after the content checks, so violations are always seen
            reply = self._reply_to(p, chat)
            self._rate_check(chat, "sendPhoto")
            size = len(content) if content is not None else 0
            message = self._bot_message(chat, photo=[_photo_size(file_id, 1280, 960, size)], caption=caption,
                                        caption_entities=entities or None, reply_to_message=reply,
                                        reply_markup=_inline_only(markup))
            self._record_sent("sendPhoto", chat["id"], message, p, caption=_p_str(p, "caption"), plain_text=caption,
                              parse_mode=mode, reply_markup=markup, file_id=file_id)
            return message

    def _api_send_document(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            raw = p.get("document")
            if isinstance(raw, str) and raw.startswith("attach://"):
                raw = p.get(raw[len("attach://"):])
            file_id, content = self._resolve_upload(p, "document")
            caption, entities, mode = self._format(p, "caption", "parse_mode", "caption_entities",
                                                   limit=MAX_CAPTION, required=False)
            markup = _p_json(p, "reply_markup", "reply keyboard markup")
            self._check_markup(markup)
            chat = self._resolve_chat(p)  # after the content checks, so violations are always seen
            reply = self._reply_to(p, chat)
            self._rate_check(chat, "sendDocument")
            document = {"file_id": file_id, "file_unique_id": f"u-{file_id}"[:32],
                        "file_name": raw.filename if isinstance(raw, UploadedFile) else "document",
                        "file_size": len(content) if content is not None else 0}
            message = self._bot_message(chat, document=document, caption=caption, caption_entities=entities or None,
                                        reply_to_message=reply, reply_markup=_inline_only(markup))
            self._record_sent("sendDocument", chat["id"], message, p, caption=_p_str(p, "caption"),
                              plain_text=caption, parse_mode=mode, reply_markup=markup, file_id=file_id)
            return message

    def _api_send_poll(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            question = (_p_str(p, "question") or "").strip()
            if not 1 <= len(question) <= 300:
                raise ApiError(400, "Bad Request: poll question length must be 1-300", violation="poll_invalid")
            options = _p_json(p, "options")
            if not isinstance(options, list) or not 2 <= len(options) <= 12:
                raise ApiError(400, "Bad Request: poll must have 2-12 options", violation="poll_invalid")
            texts = [o.get("text") if isinstance(o, dict) else o for o in options]
            if not all(isinstance(t, str) and 1 <= len(t.strip()) <= 100 for t in texts):
                raise ApiError(400, "Bad Request: poll option length must be 1-100", violation="poll_invalid")
            poll_type = _p_str(p, "type") or "regular"
            if poll_type not in ("regular", "quiz"):
                raise ApiError(400, "Bad Request: wrong poll type specified", violation="poll_invalid")
            multiple = _p_bool(p, "allows_multiple_answers")
            correct = _p_int(p, "correct_option_id")
            correct_ids = _p_json(p, "correct_option_ids")
            if correct is not None:
                correct_ids = [correct]
            if poll_type == "quiz":
                if not correct_ids or not all(isinstance(c, int) and 0 <= c < len(texts) for c in correct_ids):
                    raise ApiError(400, "Bad Request: wrong correct option id specified", violation="poll_invalid")
            open_period = _p_int(p, "open_period")
            if open_period is not None and not 5 <= open_period <= 2628000:
                raise ApiError(400, "Bad Request: wrong open period specified", violation="poll_invalid")
            explanation = _p_str(p, "explanation")
            if explanation is not None and (len(explanation) > 200 or explanation.count("\n") > 2):
                raise ApiError(400, "Bad Request: poll explanation must be at most 200 characters and 2 line feeds",
                               violation="poll_invalid")
            markup = _p_json(p, "reply_markup", "reply keyboard markup")
            self._check_markup(markup)
            chat = self._resolve_chat(p)
            self._rate_check(chat, "sendPoll")
            poll_id = str(self._next_poll)
            self._next_poll += 1
            poll: dict[str, Any] = {
                "id": poll_id, "question": question,
                "options": [{"text": t, "voter_count": 0, "persistent_id": str(i)} for i, t in enumerate(texts)],
                "total_voter_count": 0, "is_closed": _p_bool(p, "is_closed"),
                "is_anonymous": _p_bool(p, "is_anonymous", default=True), "type": poll_type,
                "allows_multiple_answers": multiple, "allows_revoting": True, "members_only": False,
            }
            if poll_type == "quiz" and correct_ids:
                poll["correct_option_ids"] = list(correct_ids)  # Bot API 9.6 (correct_option_id is gone)
            if explanation:
                poll["explanation"] = explanation
            closes = None
            if open_period is not None:
                closes = time.time() + open_period
                poll.update(open_period=open_period, close_date=int(closes))
            message = self._bot_message(chat, poll=poll, reply_markup=_inline_only(markup))
            self._polls[poll_id] = {"poll": poll, "chat_id": chat["id"], "message_id": message["message_id"],
                                    "closes": closes}
            self._record_sent("sendPoll", chat["id"], message, p, text=question, plain_text=question,
                              reply_markup=markup, poll=copy.deepcopy(poll))
            return message

    def _api_stop_poll(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            chat = self._resolve_chat(p, sending=False)
            mid = _p_int(p, "message_id", required=True)
            message = self._messages.get((chat["id"], mid or 0))
            if message is None or "poll" not in message:
                raise ApiError(400, "Bad Request: message with poll to stop not found")
            if message["poll"]["is_closed"]:
                raise ApiError(400, "Bad Request: poll has already been closed")
            message["poll"]["is_closed"] = True
            return copy.deepcopy(message["poll"])

    def _editable(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("inline_message_id"):
            raise ApiError(400, "Bad Request: MESSAGE_ID_INVALID")
        chat = self._resolve_chat(p, sending=False)
        mid = _p_int(p, "message_id", required=True, error="Bad Request: message identifier is not specified")
        message = self._messages.get((chat["id"], mid or 0))
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if not self._is_bot_message(message):
            raise ApiError(400, "Bad Request: message can't be edited")
        return message

    def _finish_edit(self, method: str, message: dict[str, Any], changes: dict[str, Any], p: dict[str, Any],
                     **record: Any) -> dict[str, Any]:
        current = {k: message.get(k) for k in changes}
        if current == changes:
            raise ApiError(400, NOT_MODIFIED)
        for key, value in changes.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        message["edit_date"] = int(time.time())
        self._record_sent(method, message["chat"]["id"], message, p, **record)
        return message

    def _api_edit_message_text(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            message = self._editable(p)
            if "text" not in message:
                raise ApiError(400, "Bad Request: there is no text in the message to edit")
            plain, entities, mode = self._format(p, "text", "parse_mode", "entities", limit=MAX_TEXT, required=True)
            markup = _p_json(p, "reply_markup", "reply keyboard markup")
            self._check_markup(markup)
            if markup is not None and "inline_keyboard" not in markup:
                raise ApiError(400, "Bad Request: only inline keyboards can be used when editing messages",
                               violation="bad_reply_markup")
            changes = {"text": plain, "entities": entities or None, "reply_markup": _inline_only(markup)}
            return self._finish_edit("editMessageText", message, changes, p, text=_p_str(p, "text"),
                                     plain_text=plain, parse_mode=mode, reply_markup=markup)

    def _api_edit_message_caption(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            message = self._editable(p)
            if "text" in message or "poll" in message:
                raise ApiError(400, "Bad Request: there is no caption in the message to edit")
            caption, entities, mode = self._format(p, "caption", "parse_mode", "caption_entities",
                                                   limit=MAX_CAPTION, required=False)
            markup = _p_json(p, "reply_markup", "reply keyboard markup")
            self._check_markup(markup)
            changes = {"caption": caption, "caption_entities": entities or None, "reply_markup": _inline_only(markup)}
            return self._finish_edit("editMessageCaption", message, changes, p, caption=_p_str(p, "caption"),
                                     plain_text=caption, parse_mode=mode, reply_markup=markup)

    def _api_edit_message_reply_markup(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            message = self._editable(p)
            markup = _p_json(p, "reply_markup", "reply keyboard markup")
            self._check_markup(markup)
            if markup is not None and "inline_keyboard" not in markup:
                raise ApiError(400, "Bad Request: only inline keyboards can be used when editing messages",
                               violation="bad_reply_markup")
            return self._finish_edit("editMessageReplyMarkup", message, {"reply_markup": _inline_only(markup)}, p,
                                     reply_markup=markup)

    def _api_delete_message(self, p: dict[str, Any]) -> bool:
        with self._lock:
            chat = self._resolve_chat(p, sending=False)
            mid = _p_int(p, "message_id", required=True)
            message = self._messages.pop((chat["id"], mid or 0), None)
            if message is None:
                raise ApiError(400, "Bad Request: message to delete not found")
            self.deleted.append({"chat_id": chat["id"], "message_id": mid, "message": message, "time": time.time()})
            return True

    def _api_answer_callback_query(self, p: dict[str, Any]) -> bool:
        with self._lock:
            query_id = _p_str(p, "callback_query_id")
            query = self._callbacks.get(query_id or "")
            if query is None:
                raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is "
                               "invalid")
            if query["answered"]:
                raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is "
                               "invalid", violation="callback_answered_twice")
            text = _p_str(p, "text")
            if text is not None and len(text) > MAX_CALLBACK_ANSWER:
                raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG", violation="callback_answer_too_long")
            query["answered"] = True
            self.callback_answers.append({
                "callback_query_id": query_id, "text": text, "show_alert": _p_bool(p, "show_alert"),
                "url": _p_str(p, "url"), "cache_time": _p_int(p, "cache_time"), "user_id": query["user_id"],
                "data": query["data"], "time": time.time(),
            })
            return True

    def _api_send_chat_action(self, p: dict[str, Any]) -> bool:
        with self._lock:
            chat = self._resolve_chat(p)
            action = _p_str(p, "action")
            if action not in CHAT_ACTIONS:
                raise ApiError(400, "Bad Request: wrong type of action", violation="bad_chat_action")
            self.chat_actions.append({"chat_id": chat["id"], "action": action, "time": time.time()})
            return True

    def _api_get_chat(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            chat = self._resolve_chat(p, sending=False)
            return {**chat, "accent_color_id": 0, "max_reaction_count": 11,
                    "accepted_gift_types": {"unlimited_gifts": True, "limited_gifts": True, "unique_gifts": True,
                                            "premium_subscription": True, "gifts_from_channels": True}}

    def _api_get_chat_member(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            chat = self._resolve_chat(p, sending=False)
            user_id = _p_int(p, "user_id", required=True)
            if user_id == self.bot_id:
                return _member(self.bot_user, self._bot_status.get(chat["id"], "member"))
            user = self._users.get(user_id or 0)
            if user is None:
                raise ApiError(400, "Bad Request: user not found")
            return _member(user, self._member_status.get((chat["id"], user["id"]), "member"))

    def _api_get_chat_administrators(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        with self._lock:
            chat = self._resolve_chat(p, sending=False)
            if chat["type"] == "private":
                raise ApiError(400, "Bad Request: there are no administrators in the private chat")
            found = [_member(self._users[u], status) for (c, u), status in self._member_status.items()
                     if c == chat["id"] and status in ("creator", "administrator")]
            if self._bot_status.get(chat["id"]) in ("creator", "administrator"):
                found.append(_member(self.bot_user, self._bot_status[chat["id"]]))
            return found

    def _api_leave_chat(self, p: dict[str, Any]) -> bool:
        with self._lock:
            chat = self._resolve_chat(p, sending=False)
            self._bot_status[chat["id"]] = "left"
            return True

    def _api_get_file(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            file_id = _p_str(p, "file_id") or ""
            entry = self._files.get(file_id)
            if entry is None:
                raise ApiError(400, "Bad Request: invalid file_id")
            result = {"file_id": file_id, "file_unique_id": entry["file_unique_id"], "file_size": len(entry["content"])}
            if len(entry["content"]) > MAX_FILE_DOWNLOAD:
                raise ApiError(400, "Bad Request: file is too big")
            result["file_path"] = entry["file_path"]
            return result

    # ---------------------------------------------------------------------------------------------- webhook delivery

    async def _webhook_worker(self) -> None:
        backoff = 0.05
        async with httpx.AsyncClient(timeout=10) as client:
            while not self._closing:
                with self._lock:
                    wh = copy.deepcopy(self._webhook)
                    update = None
                    if wh is not None:
                        self._drop_disallowed(self._allowed(self._allowed_updates))
                        update = copy.deepcopy(self._pending[0]) if self._pending else None
                if wh is None or update is None:
                    event = self._event
                    assert event is not None
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(event.wait(), 1.0)
                    continue
                headers = {"X-Telegram-Bot-Api-Secret-Token": wh["secret_token"]} if wh["secret_token"] else {}
                status, error = None, None
                try:
                    response = await client.post(wh["url"], json=update, headers=headers)
                    status = response.status_code
                    if not 200 <= status < 300:
                        error = f"Wrong response from the webhook: {status} {response.reason_phrase}"
                except httpx.HTTPError as exc:
                    error = f"Connection failed: {exc!r}"
                with self._lock:
                    self.webhook_deliveries.append({"update_id": update["update_id"], "url": wh["url"],
                                                    "status": status, "error": error, "time": time.time()})
                    if error is None:
                        self._pending = [u for u in self._pending if u["update_id"] != update["update_id"]]
                    elif self._webhook is not None:
                        self._webhook.update(last_error_date=int(time.time()), last_error_message=error)
                if error is None:
                    backoff = 0.05
                else:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 1.0)

    # ---------------------------------------------------------------------------------------------- injecting updates

    def queue(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update (assigning an update_id if it has none) for getUpdates, or the webhook if one is set."""
        with self._lock:
            if "update_id" not in update:
                update["update_id"] = self._take_update_id()
            else:
                self._next_update_id = max(self._next_update_id, update["update_id"] + 1)
            self._index(update)
            self._pending.append(update)
            self._pending.sort(key=lambda u: u["update_id"])
        self._notify()
        return update

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates queued and not yet confirmed by getUpdates' offset (or delivered to the webhook)."""
        with self._lock:
            return copy.deepcopy(self._pending)

    def _take_update_id(self) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        return update_id

    def _index(self, update: dict[str, Any]) -> None:
        """Remember chats and messages of hand-made updates, so replies to and edits of them work."""
        for key in ("message", "edited_message", "channel_post"):
            if isinstance(update.get(key), dict) and "chat" in update[key] and "message_id" in update[key]:
                self._store(update[key])
                self._chats.setdefault(update[key]["chat"]["id"], update[key]["chat"])
        message = (update.get("callback_query") or {}).get("message")
        if isinstance(message, dict) and "chat" in message and "message_id" in message:
            self._chats.setdefault(message["chat"]["id"], message["chat"])
            if (message["chat"]["id"], message["message_id"]) not in self._messages:
                self._store(message)

    def _emit(self, update: dict[str, Any], queue: bool, problem: str | None = None) -> dict[str, Any]:
        if not queue:
            with self._lock:
                self._index(update)
            return update
        if problem:
            with self._lock:
                self._index(update)
                self.undelivered.append({"update": update, "reason": problem})
            log.info("update %s not delivered: %s", update["update_id"], problem)
            return update
        return self.queue(update)

    def _delivery_problem(self, chat: dict[str, Any], text: str | None, entities: list[dict[str, Any]],
                          reply_to: dict[str, Any] | None) -> str | None:
        """Why Telegram would not deliver a user's message to the bot, or None."""
        if chat["type"] not in ("group", "supergroup"):
            return None
        if self._bot_status.get(chat["id"]) in ("left", "kicked"):
            return "the bot is not a member of the group"
        if not self.privacy_mode or self._bot_status.get(chat["id"]) in ("administrator", "creator"):
            return None
        if reply_to is not None and self._is_bot_message(reply_to):
            return None
        for e in entities:
            part = _utf16_slice(text or "", e["offset"], e["length"])
            addressee = part.partition("@")[2].lower()
            if e["type"] == "bot_command" and addressee in ("", self.username.lower()):
                return None
            if e["type"] == "mention" and part[1:].lower() == self.username.lower():
                return None
        return "privacy mode: group message not meant for the bot (no command, mention or reply)"

    def _unblock_if_blocked(self, chat: dict[str, Any], user: dict[str, Any], queue: bool) -> None:
        """A user who blocked the bot must unblock it to write: Telegram then sends my_chat_member first."""
        if chat["type"] == "private" and self._bot_status.get(chat["id"]) == "kicked":
            self._bot_status[chat["id"]] = "member"
            self._emit({"update_id": self._take_update_id(), "my_chat_member": {
                "chat": dict(chat), "from": user, "date": int(time.time()),
                "old_chat_member": _member(self.bot_user, "kicked"),
                "new_chat_member": _member(self.bot_user, "member"),
            }}, queue)

    def _reply_target(self, chat_id: int, reply_to_bot: bool, reply_to_message_id: int | None) -> dict | None:
        if reply_to_message_id is not None:
            target = self._messages.get((chat_id, reply_to_message_id))
            if target is None:
                raise ValueError(f"no message {reply_to_message_id} in chat {chat_id}")
        elif reply_to_bot:
            mine = [m for (c, _), m in self._messages.items() if c == chat_id and self._is_bot_message(m)]
            target = max(mine, key=lambda m: m["message_id"]) if mine else None
            if target is None:
                chat = self._chats[chat_id]
                target = self._bot_message(chat, text="（机器人的一条早先消息）")
        else:
            return None
        return {k: v for k, v in copy.deepcopy(target).items() if k != "reply_to_message"}

    def user_message(self, user_id: int, text: str, chat_id: int | None = None, chat_type: str = "private", *,
                     first_name: str = "Tester", last_name: str | None = None, username: str | None = None,
                     language_code: str | None = "zh-hans", title: str | None = None, reply_to_bot: bool = False,
                     reply_to_message_id: int | None = None, entities: list[dict[str, Any]] | None = None,
                     queue: bool = True) -> dict[str, Any]:
        """A user's text message; bot_command and mention entities are added unless ``entities`` is given.

        ``chat_id`` defaults to ``user_id`` in private chats, else to DEFAULT_GROUP_ID / DEFAULT_SUPERGROUP_ID.
        ``reply_to_bot`` replies to the bot's latest message in that chat.  With privacy mode, group messages the bot
        would not see are recorded in ``fake.undelivered`` and not queued.
        """
        with self._lock:
            user = self._user(user_id, first_name, last_name, username, language_code)
            chat = self._chat(chat_id, chat_type, user, title)
            ents = auto_entities(text) if entities is None else list(entities)
            self._unblock_if_blocked(chat, user, queue)
            reply = self._reply_target(chat["id"], reply_to_bot, reply_to_message_id)
            message: dict[str, Any] = {"message_id": self._new_message_id(chat["id"]), "from": user,
                                       "chat": dict(chat), "date": int(time.time()), "text": text}
            if ents:
                message["entities"] = ents
            if reply:
                message["reply_to_message"] = reply
            update = {"update_id": self._take_update_id(), "message": message}
            problem = self._delivery_problem(chat, text, ents, reply)
        return self._emit(update, queue, problem)

    def photo(self, user_id: int, file_id: str, caption: str | None = None, chat_id: int | None = None,
              chat_type: str = "private", *, content: bytes | None = None, width: int = 1280, height: int = 960,
              first_name: str = "Tester", username: str | None = None, language_code: str | None = "zh-hans",
              title: str | None = None, reply_to_bot: bool = False, queue: bool = True) -> dict[str, Any]:
        """A user's photo (sizes: a thumbnail ``{file_id}-thumb`` and ``file_id`` itself, largest last).

        The file is registered for getFile and download with ``content`` (default: a few fake JPEG bytes).
        """
        data = FAKE_JPEG if content is None else content
        with self._lock:
            self.add_file(file_id, data, f"photos/{_safe(file_id)}.jpg")
            self.add_file(f"{file_id}-thumb", data, f"photos/{_safe(file_id)}-thumb.jpg")
            user = self._user(user_id, first_name, None, username, language_code)
            chat = self._chat(chat_id, chat_type, user, title)
            self._unblock_if_blocked(chat, user, queue)
            reply = self._reply_target(chat["id"], reply_to_bot, None)
            message: dict[str, Any] = {
                "message_id": self._new_message_id(chat["id"]), "from": user, "chat": dict(chat),
                "date": int(time.time()),
                "photo": [_photo_size(f"{file_id}-thumb", 90, 90 * height // max(width, 1), len(data)),
                          _photo_size(file_id, width, height, len(data))],
            }
            ents: list[dict[str, Any]] = []
            if caption:
                message["caption"] = caption
                ents = auto_entities(caption)
                if ents:
                    message["caption_entities"] = ents
            if reply:
                message["reply_to_message"] = reply
            update = {"update_id": self._take_update_id(), "message": message}
            problem = self._delivery_problem(chat, caption, ents, reply)
        return self._emit(update, queue, problem)

    def callback(self, user_id: int, data: str, message_id: int | None = None, chat_id: int | None = None,
                 chat_type: str = "private", *, first_name: str = "Tester", username: str | None = None,
                 language_code: str | None = "zh-hans", queue: bool = True) -> dict[str, Any]:
        """A press of an inline button with ``data`` on bot message ``message_id``.

        Without ``message_id`` the bot's latest message in the chat that has a button with this callback_data is
        used (ValueError if there is none).  An unknown ``message_id`` is registered as an earlier bot message.
        """
        with self._lock:
            user = self._user(user_id, first_name, None, username, language_code)
            chat = self._chat(chat_id, chat_type, user, None)
            if message_id is None:
                candidates = [m for (c, _), m in self._messages.items()
                              if c == chat["id"] and self._is_bot_message(m) and data in _button_data(m)]
                if not candidates:
                    raise ValueError(f"no bot message in chat {chat['id']} has a button with callback_data {data!r}")
                message = max(candidates, key=lambda m: m["message_id"])
            else:
                message = self._messages.get((chat["id"], message_id))
                if message is None:
                    message = self._store({"message_id": message_id, "from": self.bot_user, "chat": dict(chat),
                                           "date": int(time.time()) - 60, "text": "（早先的消息）",
                                           "reply_markup": {"inline_keyboard": [[{"text": "…",
                                                                                  "callback_data": data}]]}})
            query_id = str(self._next_callback)
            self._next_callback += 1
            self._callbacks[query_id] = {"answered": False, "user_id": user_id, "data": data, "time": time.time()}
            query = {"id": query_id, "from": user, "message": copy.deepcopy(message),
                     "chat_instance": str(zlib.crc32(str(chat["id"]).encode()) * 1000003), "data": data}
            update = {"update_id": self._take_update_id(), "callback_query": query}
        return self._emit(update, queue)

    def press(self, chat_id: int, button_text: str, user_id: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Press the button labelled ``button_text`` on the bot's latest message in ``chat_id`` that has one."""
        with self._lock:
            chat = self._chats.get(chat_id)
            if chat is None:
                raise ValueError(f"unknown chat {chat_id}")
            mine = sorted((m for (c, _), m in self._messages.items() if c == chat_id and self._is_bot_message(m)),
                          key=lambda m: m["message_id"], reverse=True)
            for message in mine:
                for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                    for button in row:
                        if button.get("text") == button_text and "callback_data" in button:
                            uid = user_id if user_id is not None else chat_id
                            if chat["type"] != "private" and user_id is None:
                                raise ValueError("user_id is required in group chats")
                            return self.callback(uid, button["callback_data"], message["message_id"], chat_id,
                                                 chat["type"], **kwargs)
        raise ValueError(f"no bot message in chat {chat_id} has a button {button_text!r}")

    def my_chat_member(self, chat_id: int, chat_type: str, old_status: str, new_status: str,
                       user_id: int | None = None, *, title: str | None = None, first_name: str = "Tester",
                       queue: bool = True) -> dict[str, Any]:
        """The bot's membership changed: added to / removed from a group, or blocked ("kicked") in a private chat.

        ``user_id`` (who did it) defaults to ``chat_id`` in private chats and to 1000001 in groups.  The new status
        is applied at once: sending to a chat where the bot is "kicked"/"left" fails with 403 like Telegram.
        """
        for status in (old_status, new_status):
            if status not in MEMBER_STATUSES:
                raise ValueError(f"unknown status {status!r}; use one of {sorted(MEMBER_STATUSES)}")
        with self._lock:
            uid = user_id if user_id is not None else (chat_id if chat_type == "private" else 1000001)
            user = self._user(uid, first_name, None, None, "zh-hans")
            chat = self._chat(chat_id, chat_type, user, title)
            self._bot_status[chat["id"]] = new_status
            update = {"update_id": self._take_update_id(), "my_chat_member": {
                "chat": dict(chat), "from": user, "date": int(time.time()),
                "old_chat_member": _member(self.bot_user, old_status),
                "new_chat_member": _member(self.bot_user, new_status),
            }}
        return self._emit(update, queue)

    def poll_answer(self, user_id: int, option_ids: list[int], poll_id: str | None = None, *,
                    first_name: str = "Tester", last_name: str | None = None, late: bool = False,
                    queue: bool = True) -> dict[str, Any]:
        """A user's vote in a poll (default: the bot's latest poll); ``option_ids=[]`` retracts the vote.

        Raises ValueError where Telegram would never send the update (anonymous poll, bad option ids, a closed
        poll: one whose ``open_period`` has passed or that was stopped). ``late=True`` builds the update for a closed
        poll all the same: a vote cast in time whose delivery was held up.
        """
        with self._lock:
            if poll_id is None:
                if not self._polls:
                    raise ValueError("the bot has not sent a poll")
                poll_id = list(self._polls)[-1]
            entry = self._polls.get(poll_id)
            if entry is not None:
                poll = entry["poll"]
                if poll["is_anonymous"]:
                    raise ValueError("Telegram sends no poll_answer for anonymous polls (send with is_anonymous=False)")
                if entry["closes"] is not None and time.time() >= entry["closes"]:
                    poll["is_closed"] = True
                if poll["is_closed"] and not late:
                    raise ValueError("the poll is closed")
                if any(not 0 <= o < len(poll["options"]) for o in option_ids):
                    raise ValueError(f"option ids {option_ids} out of range")
                if len(option_ids) > 1 and not poll["allows_multiple_answers"]:
                    raise ValueError("the poll does not allow multiple answers")
                for o in option_ids:
                    poll["options"][o]["voter_count"] += 1
                poll["total_voter_count"] += 1 if option_ids else 0
            user = self._user(user_id, first_name, last_name, None, "zh-hans")
            update = {"update_id": self._take_update_id(), "poll_answer": {
                "poll_id": poll_id, "user": user, "option_ids": list(option_ids),
                "option_persistent_ids": [str(o) for o in option_ids],
            }}
        return self._emit(update, queue)

    # ---------------------------------------------------------------------------------------------- files

    def add_file(self, file_id: str, content: bytes, file_path: str | None = None) -> dict[str, Any]:
        """Register bytes for getFile and the download route; returns the File object."""
        with self._lock:
            path = file_path or f"documents/{_safe(file_id)}"
            self._files[file_id] = {"content": bytes(content), "file_path": path,
                                    "file_unique_id": f"u{zlib.crc32(file_id.encode()):x}"}
            return {"file_id": file_id, "file_unique_id": self._files[file_id]["file_unique_id"],
                    "file_size": len(content), "file_path": path}

    # ---------------------------------------------------------------------------------------------- reading

    def messages_to(self, chat_id: int) -> list[dict[str, Any]]:
        """Records in ``sent`` of new messages (not edits) to ``chat_id``, oldest first."""
        with self._lock:
            return [r for r in self.sent if r["chat_id"] == int(chat_id) and r["method"].lower() in SEND_METHODS]

    def texts_to(self, chat_id: int) -> list[str]:
        """Plain texts (captions for media) of the messages sent to ``chat_id``."""
        return [r["plain_text"] or "" for r in self.messages_to(chat_id)]

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """The current state of a message (after edits), as Telegram holds it; None if unknown or deleted."""
        with self._lock:
            found = self._messages.get((int(chat_id), int(message_id)))
            return copy.deepcopy(found) if found else None

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [c for c in self.calls if c["method"].lower() == method.lower().replace("_", "")]

    @property
    def commands(self) -> list[dict[str, str]]:
        """Commands set for the default scope and no language."""
        return self.commands_for()

    def commands_for(self, scope: dict[str, Any] | None = None, language_code: str = "") -> list[dict[str, str]]:
        with self._lock:
            key = json.dumps(scope or {"type": "default"}, sort_keys=True), language_code
            return copy.deepcopy(self._commands.get(key, []))

    @property
    def webhook(self) -> dict[str, Any] | None:
        """The webhook as set by setWebhook (url, secret_token, allowed_updates, ...), or None."""
        with self._lock:
            return copy.deepcopy(self._webhook)

    @property
    def unanswered_callbacks(self) -> list[str]:
        with self._lock:
            return [qid for qid, q in self._callbacks.items() if not q["answered"]]

    @property
    def polls(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return copy.deepcopy({pid: entry["poll"] for pid, entry in self._polls.items()})

    @property
    def settings(self) -> dict[str, Any]:
        """Parameters of the last setMyDescription / setMyShortDescription / setMyName / setChatMenuButton call."""
        with self._lock:
            return copy.deepcopy(self._settings)

    def assert_no_violations(self) -> None:
        """Fail with a readable list if any call broke a Telegram limit or the rate limits."""
        with self._lock:
            problems = [f"{v['method']}: {v['description']}" for v in self.violations]
            problems += [f"rate limit ({r['scope']}, chat {r['chat_id']}): {r['count']} messages in {r['window']}s"
                         for r in self.rate_violations]
        if problems:
            raise AssertionError("Telegram would have rejected:\n  " + "\n  ".join(problems))

    def clear_records(self) -> None:
        """Forget recorded calls, sends and violations (state such as chats and messages is kept)."""
        with self._lock:
            for records in (self.sent, self.calls, self.violations, self.rate_violations, self.injected,
                            self.callback_answers, self.chat_actions, self.deleted, self.undelivered,
                            self.webhook_deliveries):
                records.clear()

    # ---------------------------------------------------------------------------------------------- waiting

    def wait_for(self, predicate: Callable[..., Any], timeout: float = 10.0, message: str | None = None) -> Any:
        """Wait until ``predicate()`` (or ``predicate(fake)``) is truthy and return its value.

        Inside a running event loop (async tests) this returns a coroutine: ``await fake.wait_for(...)``.  Without
        one (sync tests) it blocks.  Raises TimeoutError listing the last calls.
        """
        return self._wait(self._checker(predicate), timeout, message)

    def wait_sent(self, n: int = 1, timeout: float = 10.0, *, chat_id: int | None = None,
                  method: str | None = None) -> Any:
        """Wait until ``sent`` has at least ``n`` records (optionally only to ``chat_id`` / of ``method``).

        Returns the matching records; like ``wait_for`` it must be awaited in async tests and blocks in sync ones.
        """

        def matching() -> list[dict[str, Any]]:
            with self._lock:
                return [r for r in self.sent
                        if (chat_id is None or r["chat_id"] == int(chat_id))
                        and (method is None or r["method"].lower() == method.lower().replace("_", ""))]

        def check() -> list[dict[str, Any]] | None:
            found = matching()
            return found if len(found) >= n else None

        what = f"{n} sent message(s)" + (f" to {chat_id}" if chat_id is not None else "") + (
            f" via {method}" if method else "")
        return self._wait(check, timeout, what)

    def _timeout_message(self, what: str | None, timeout: float) -> str:
        with self._lock:
            recent = [f"{c['method']} -> {c['status']}" + (f" ({c['description']})" if c["description"] else "")
                      for c in self.calls if c["method"].lower() != "getupdates"][-10:]
            violations = [v["description"] for v in self.violations]
        lines = [f"{what or 'condition'} not met within {timeout}s", f"last calls: {recent}"]
        if violations:
            lines.append(f"violations: {violations}")
        return "; ".join(lines)


# --------------------------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------------------------


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _update_type(update: dict[str, Any]) -> str:
    return next((k for k in update if k != "update_id"), "")


def _utf16_slice(text: str, offset: int, length: int) -> str:
    raw = text.encode("utf-16-le")
    return raw[offset * 2:(offset + length) * 2].decode("utf-16-le", "replace")


def _inline_only(markup: Any) -> dict[str, Any] | None:
    """Telegram echoes only non-empty inline keyboards in the returned Message."""
    if isinstance(markup, dict) and markup.get("inline_keyboard"):
        return copy.deepcopy(markup)
    return None


def _button_data(message: dict[str, Any]) -> set[str]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return {b["callback_data"] for row in rows for b in row if "callback_data" in b}


def _photo_size(file_id: str, width: int, height: int, size: int) -> dict[str, Any]:
    return {"file_id": file_id, "file_unique_id": f"u{zlib.crc32(file_id.encode()):x}", "width": width,
            "height": height, "file_size": size}


def _member(user: dict[str, Any], status: str) -> dict[str, Any]:
    member: dict[str, Any] = {"user": dict(user), "status": status}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        member.update(can_be_edited=False, is_anonymous=False, can_manage_chat=True, can_delete_messages=True,
                      can_manage_video_chats=False, can_restrict_members=False, can_promote_members=False,
                      can_change_info=False, can_invite_users=True, can_post_stories=False, can_edit_stories=False,
                      can_delete_stories=False, can_pin_messages=True)
    elif status == "restricted":
        member.update(is_member=True, can_change_info=False, can_invite_users=False, can_pin_messages=False,
                      can_send_messages=False, can_send_polls=False, can_send_other_messages=False,
                      can_add_web_page_previews=False, can_manage_topics=False, until_date=0, can_send_audios=False,
                      can_send_documents=False, can_send_photos=False, can_send_videos=False,
                      can_send_video_notes=False, can_send_voice_notes=False, can_edit_tag=False)
    elif status == "kicked":
        member["until_date"] = 0
    return member
