"""What a Telegram error means for a message sent from the outbox: gone for good, or worth another try (and when)."""

from __future__ import annotations

from datetime import timedelta

from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot.outbox import Outcome


def delivery_outcome(exc: TelegramError) -> Outcome:
    """What a Telegram error means for an outbox message: gone for good, or worth another try (and when)."""
    if isinstance(exc, (Forbidden, BadRequest)):  # blocked, kicked, chat or file gone: no retry changes that
        return Outcome.failed(f"{exc.__class__.__name__}: {exc.message}")
    if isinstance(exc, RetryAfter):
        wait = exc.retry_after
        return Outcome.retry("RetryAfter", after=wait.total_seconds() if isinstance(wait, timedelta) else wait)
    if isinstance(exc, NetworkError):  # TimedOut included
        return Outcome.retry(exc.__class__.__name__)
    return Outcome.retry(f"{exc.__class__.__name__}: {exc.message}")
