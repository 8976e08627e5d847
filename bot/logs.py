"""No secret in a log line, whoever writes it: ours, python-telegram-bot, httpx, uvicorn.

`install` puts a `Redactor` on the root logger's handlers (set up by the CLI), so it sees every record that is
printed, from any logger. It replaces each configured secret value, and as a safety net the shapes secrets take in
URLs (a Telegram token after /bot, an access_token=, key= or code= in a query string), with `[redacted]`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import parse_qs, urlsplit

from bot.config import SECRETS, Settings

REDACTED = "[redacted]"
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
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install(settings: Settings) -> Redactor:
    """Redact on every handler of the root logger (once: a new call replaces the filter it put there before)."""
    redactor = Redactor(secret_values(settings))
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, Redactor)]:
            handler.removeFilter(old)
        handler.addFilter(redactor)
    return redactor
