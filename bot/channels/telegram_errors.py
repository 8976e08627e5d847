"""What a Telegram error means for a message sent from the outbox: gone for good, worth another try (and when), or
unknown (the request went out and no answer came back: the message may have arrived).

python-telegram-bot raises `NetworkError` (`TimedOut` for timeouts) with the httpx exception as `__cause__` when no
answer came, and a `NetworkError` without a cause when Telegram answered with a server error (5xx).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import ExtBot

from bot.outbox import NOT_SENT, Outcome


def never_sent(exc: NetworkError) -> bool:
    """Whether the request surely did not post anything: Telegram answered with an error, or it never left."""
    return exc.__cause__ is None or isinstance(exc.__cause__, NOT_SENT)


PACED = 1  # `rate_limit_args` of a send paced by a shared schedule (bot/rate.py): a 429 is raised, not waited out


def paced(bot: Bot) -> dict[str, Any]:
    """The arguments that mark a send as paced (only the application's ExtBot takes them; a plain Bot has no
    rate limiter to tell)."""
    return {"rate_limit_args": PACED} if isinstance(bot, ExtBot) else {}


def retry_seconds(exc: RetryAfter) -> float:
    wait = exc.retry_after
    return wait.total_seconds() if isinstance(wait, timedelta) else float(wait)


def delivery_outcome(exc: TelegramError, *, repeatable: bool = True) -> Outcome:
    """What a Telegram error means for an outbox message: gone for good, or worth another try (and when).

    `repeatable=False` for a request that posts a message: when it may have arrived, its outcome is unknown rather
    than worth another try. A download (repeatable) is simply tried again.
    """
    if isinstance(exc, (Forbidden, BadRequest)):  # blocked, kicked, chat or file gone: no retry changes that
        return Outcome.failed(f"{exc.__class__.__name__}: {exc.message}")
    if isinstance(exc, RetryAfter):
        return Outcome.retry("RetryAfter", after=retry_seconds(exc))
    if isinstance(exc, NetworkError):  # TimedOut included
        cause = exc.__cause__
        reason = f"{exc.__class__.__name__} ({cause.__class__.__name__})" if cause else exc.__class__.__name__
        if repeatable or never_sent(exc):
            return Outcome.retry(reason)
        return Outcome.unknown(reason)
    return Outcome.retry(f"{exc.__class__.__name__}: {exc.message}")

