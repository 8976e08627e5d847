"""Abuse limits: how many messages one user, and how many messages and tips one client address, may send in a
window. Counted in this process's memory (a deployment of N workers allows up to N times as much), bounded in
the number of senders it remembers. Staff are not limited."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from ipaddress import ip_address, ip_network

from bot.config import LimitSettings

MAX_SENDERS = 100_000  # remembered per window; the least recently seen are forgotten first


class SlidingWindow:
    """At most `limit` events per key in any `seconds`."""

    def __init__(self, limit: int, seconds: float, max_keys: int = MAX_SENDERS) -> None:
        self.limit, self.seconds, self.max_keys = limit, seconds, max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, key: str, now: float | None = None) -> bool:
        """Count an event for `key` if it is within the limit; False (and not counted) when it is over."""
        if self.full(key, now):
            return False
        self.count(key, now)
        return True

    def full(self, key: str, now: float | None = None) -> bool:
        """True when another event for `key` now would be over the limit."""
        events = self._events.get(key)
        if not events:
            return False
        self._events.move_to_end(key)
        now = time.monotonic() if now is None else now
        while events and now - events[0] >= self.seconds:
            events.popleft()
        return len(events) >= self.limit

    def count(self, key: str, now: float | None = None) -> None:
        """Count an event for `key` (also past the limit)."""
        now = time.monotonic() if now is None else now
        events = self._events.get(key)
        if events is None:
            events = self._events[key] = deque(maxlen=self.limit)
            if len(self._events) > self.max_keys:
                self._events.popitem(last=False)
        else:
            self._events.move_to_end(key)
        events.append(now)

    def refund(self, key: str) -> None:
        """Take back the last event counted for `key` (it turned out not to count)."""
        events = self._events.get(key)
        if events:
            events.pop()


class Limits:
    def __init__(self, settings: LimitSettings) -> None:
        self.messages = SlidingWindow(settings.messages_per_minute, 60)
        self.address_messages = SlidingWindow(settings.address_messages_per_minute, 60)
        self.address_tips = SlidingWindow(settings.address_tips_per_hour, 3600)
        self._proxies = [ip_network(p, strict=False) for p in settings.trusted_proxies]

    def message(self, channel: str, user: str) -> bool:
        """Count a message of this user; False when they are over the limit (the message is not read)."""
        return self.messages.allow(f"{channel}\0{user}")

    def not_a_message(self, channel: str, user: str) -> None:
        """The message counted was a platform's redelivery of one already read: it does not count again."""
        self.messages.refund(f"{channel}\0{user}")

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client's address: the peer's, or, when the peer is a configured proxy, the last address in
        X-Forwarded-For that is not one of our proxies (the one our first proxy saw)."""
        if peer is None or not forwarded_for or not self._trusted(peer):
            return peer
        for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
            if not self._trusted(hop):
                return hop if _is_address(hop) else peer
        return peer

    def _trusted(self, address: str) -> bool:
        try:
            ip = ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._proxies)


def _is_address(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True
