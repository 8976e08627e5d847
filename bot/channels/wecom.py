"""WeCom (企业微信) group robot: text and markdown to a staff group's webhook, under its rate limit, with retries.

Tips and broadcasts use it for staff alerts. `send` returns True when WeCom accepted the message; failures are
logged with WeCom's error code and returned as False, so the caller (an outbox) can try again later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

import httpx

log = logging.getLogger(__name__)
WINDOW = 60.0
RATE_LIMITED = 45009


class WeComRobot:
    def __init__(self, webhook_url: str, per_minute: int = 20, retries: int = 3, backoff: float = 1.0,
                 timeout: float = 5.0, window: float = WINDOW) -> None:
        self.url, self.per_minute, self.retries, self.backoff = webhook_url, per_minute, retries, backoff
        self.window = window
        self.http = httpx.AsyncClient(timeout=timeout)
        self.sent_at: deque[list[float]] = deque()  # one mutable slot per message in the window
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        await self.http.aclose()

    async def send_text(self, content: str) -> bool:
        return await self.send({"msgtype": "text", "text": {"content": content}})

    async def send_markdown(self, content: str) -> bool:
        return await self.send({"msgtype": "markdown", "markdown": {"content": content}})

    async def send(self, payload: dict[str, object]) -> bool:
        for attempt in range(self.retries + 1):
            slot = await self._wait_turn()
            try:
                res = await self.http.post(self.url, json=payload)
                code = res.json().get("errcode", -1) if res.status_code < 500 else -1
            except (httpx.TransportError, ValueError) as exc:
                code, reason = -1, exc.__class__.__name__
            else:
                reason = f"errcode {code}"
            finally:  # WeCom counts a message when it arrives, which may be after we took the turn
                slot[0] = time.monotonic()
            if code == 0:
                return True
            if code not in (-1, RATE_LIMITED) or attempt == self.retries:
                log.error("wecom robot: message not delivered (%s)", reason)
                return False
            log.warning("wecom robot: %s; retry %d of %d", reason, attempt + 1, self.retries)
            await asyncio.sleep(self.window / self.per_minute if code == RATE_LIMITED else self.backoff * 2 ** attempt)
        return False

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
                    return slot
                await asyncio.sleep(self.window - (now - self.sent_at[0][0]) + 0.01)
