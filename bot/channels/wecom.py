"""WeCom (企业微信) group robot: text and markdown to a staff group's webhook, under its rate limit, with retries.

Staff alerts of new tips use it. `send` says what became of a message: sent; not sent (worth a retry later, or not,
with WeCom's error code); or unknown: the request went out and no answer came (a read timeout, a dropped
connection), so the message may be in the group already. Only what surely was not sent is retried here: WeCom has
no idempotency key, and repeating a message that did arrive would post it twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

import httpx

from bot.outbox import NOT_SENT
from bot.rate import SharedRate
from bot.storage.database import Database

log = logging.getLogger(__name__)
WINDOW = 60.0
RATE_LIMITED = 45009
BUSY = -1  # "system busy"; also what we make of a 5xx answer
GIVE_UP = {40008, 40058, 44004, 45002}  # the message itself is wrong (type, parameters, empty, too long)


@dataclass(frozen=True)
class Delivery:
    """What became of one message: "sent", "unknown" (it may have arrived), "retry" (not sent, worth another try
    later) or "failed" (not sent, and another try changes nothing); `reason` names the error, never the content."""

    kind: Literal["sent", "unknown", "retry", "failed"]
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.kind == "sent"


def shared_rate(db: Database, url: str, per_minute: int, window: float = WINDOW) -> SharedRate:
    """The schedule every process keeps one robot to: named by a digest of its URL (which holds the robot's key), a
    slot a little more than window/per_minute apart, so no window of WeCom's holds one message too many."""
    return SharedRate(db, f"wecom:{hashlib.sha256(url.encode()).hexdigest()[:16]}", per_minute / window * 0.95)


class WeComRobot:
    def __init__(self, webhook_url: str, per_minute: int = 20, retries: int = 3, backoff: float = 1.0,
                 timeout: float = 20.0, window: float = WINDOW, connect_timeout: float = 5.0,
                 shared: SharedRate | None = None) -> None:
        """`shared`: the robot's rate as every process sees it (WeCom counts per robot, not per process): each
        message also takes one of its slots, and a 45009 holds them all."""
        self.url, self.per_minute, self.retries, self.backoff = webhook_url, per_minute, retries, backoff
        self.shared = shared
        self.window = window
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=connect_timeout))
        self.sent_at: deque[list[float]] = deque()  # one mutable slot per message in the window
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        await self.http.aclose()

    async def send_text(self, content: str) -> Delivery:
        return await self.send({"msgtype": "text", "text": {"content": content}})

    async def send_markdown(self, content: str) -> Delivery:
        return await self.send({"msgtype": "markdown", "markdown": {"content": content}})

    async def send(self, payload: dict[str, object]) -> Delivery:
        for attempt in range(self.retries + 1):
            slot = await self._wait_turn()
            try:
                delivery, code = await self._post(payload)
            finally:  # WeCom counts a message when it arrives, which may be after we took the turn
                slot[0] = time.monotonic()
            if delivery.kind == "unknown":
                log.warning("wecom robot: no answer (%s); the message may have arrived, not sent again here",
                            delivery.reason)
                return delivery
            if delivery.kind == "sent" or code not in (BUSY, RATE_LIMITED) or attempt == self.retries:
                if not delivery.ok:
                    log.error("wecom robot: message not delivered (%s)", delivery.reason)
                return delivery
            log.warning("wecom robot: %s; retry %d of %d", delivery.reason, attempt + 1, self.retries)
            pause = self.window / self.per_minute if code == RATE_LIMITED else self.backoff * 2 ** attempt
            if self.shared is not None and code == RATE_LIMITED:
                await self.shared.hold(pause)
            await asyncio.sleep(pause)
        raise AssertionError("unreachable")

    async def _post(self, payload: dict[str, object]) -> tuple[Delivery, int | None]:
        """One request; the delivery and WeCom's error code (BUSY for a 5xx or no connection, None for no answer)."""
        try:
            res = await self.http.post(self.url, json=payload)
        except httpx.InvalidURL:
            return Delivery("failed", "InvalidURL"), None
        except NOT_SENT as exc:
            return Delivery("retry", exc.__class__.__name__), BUSY
        except httpx.TransportError as exc:  # written, maybe read by WeCom, and no answer came
            return Delivery("unknown", exc.__class__.__name__), None
        if res.status_code >= 500:
            return Delivery("retry", f"HTTP {res.status_code}"), BUSY
        try:
            code = res.json().get("errcode", BUSY)
        except (ValueError, AttributeError):
            return Delivery("retry", f"HTTP {res.status_code}, not a WeCom answer"), BUSY
        if code == 0:
            return Delivery("sent"), 0
        return Delivery("failed" if code in GIVE_UP else "retry", f"errcode {code}"), code

    async def _wait_turn(self) -> list[float]:
        """Keep under `per_minute` messages in any window (60 s; shorter only in tests)."""
        async with self._lock:
            while True:
                now = time.monotonic()
                while self.sent_at and now - self.sent_at[0][0] >= self.window:
                    self.sent_at.popleft()
                if len(self.sent_at) < self.per_minute:
                    slot = [now]
                    self.sent_at.append(slot)
                    if self.shared is not None:
                        await self.shared.take()
                        slot[0] = time.monotonic()
                    return slot
                await asyncio.sleep(self.window - (now - self.sent_at[0][0]) + 0.01)
