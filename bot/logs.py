"""No secret in a log line, whoever writes it: ours, python-telegram-bot, httpx, uvicorn.

`install` puts a `Redactor` on the root logger's handlers (set up by the CLI), so it sees every record that is
printed, from any logger. It replaces each configured secret value, and as a safety net the shapes secrets take in
URLs (a Telegram token after /bot, an access_token=, key= or code= in a query string), with `[redacted]`.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterable
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from sqlalchemy.exc import DBAPIError, StatementError

from bot.config import SECRETS, Settings

REDACTED = "[redacted]"
# other libraries' loggers kept at WARNING whatever the level (bot/cli/common.py): jieba's start-up, aiosqlite's
# every statement with its values (residents' words), alembic's steps
QUIET = ("jieba", "aiosqlite", "alembic.runtime.migration", "alembic.runtime.plugins")
MIN_SECRET_CHARS = 4  # shorter values would redact ordinary words; no real token or key is that short
PATTERNS = (
    (re.compile(r"(/bot)\d+:[A-Za-z0-9_-]+"), rf"\1{REDACTED}"),  # .../bot123456:ABC-def/getMe, /file/bot...
    (re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{30,}"), REDACTED),  # a Telegram token anywhere else
    (re.compile(r"([?&](?:access_token|key|secret|code)=)[^&#\s'\"]+"), rf"\1{REDACTED}"),  # WeChat API, WeCom robot
)


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold: tokens, keys, the WeCom robot's key (in its URL) and the sealing key."""
    values = [settings.secret_key]
    for section, key in SECRETS:
        value: str = getattr(getattr(settings, section), key)
        if section == "wecom" and value:  # the robot URL's secret is its key= parameter
            value = next(iter(parse_qs(urlsplit(value).query).get("key", [])), value)
        values.append(value)
    return values


class Redactor(logging.Filter):
    """Rewrites a record's message (and any traceback) without the secrets; never drops a record."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # longest first: a secret that contains another is replaced whole
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        for pattern, replacement in PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: keep both, as text, without secrets
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = format_exception(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


def format_exception(exc_info: ExcInfo) -> str:
    """A traceback as logging prints it; but where a database error is in the chain, no exception's message: a
    driver quotes the values it was given ("Key (name)=(张秀兰) already exists"), and values can be residents' words.
    Then each exception is its type, and a failed statement its SQL (values are bound apart from it)."""
    chain: list[BaseException] = []
    exc = exc_info[1]
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if not any(isinstance(e, DBAPIError) for e in chain):
        return logging.Formatter().formatException(exc_info)
    parts = []
    for e in reversed(chain):
        what = f"{type(e).__module__}.{type(e).__qualname__}"
        if isinstance(e, StatementError) and e.statement:
            what += f" in: {' '.join(e.statement.split())[:500]}"
        parts.append("Traceback (most recent call last):\n" + "".join(traceback.format_tb(e.__traceback__))
                     + f"{what} (message withheld: a database error can quote the values it was given)")
    return "\n\nThe above exception led to the following exception:\n\n".join(parts)


def install(settings: Settings) -> Redactor:
    """Redact on every handler of the root logger (once: a new call replaces the filter it put there before)."""
    redactor = Redactor(secret_values(settings))
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, Redactor)]:
            handler.removeFilter(old)
        handler.addFilter(redactor)
    return redactor
