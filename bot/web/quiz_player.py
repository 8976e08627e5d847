"""Who plays on the quiz page: the WeChat resident signed in on this browser, or else the browser's own cookie.

Both are cookies this server signed; nothing a request says in its body or query names a player. A WeChat
session (`ff_quiz_wx`) holds the player's stored key, the keyed fingerprint of ("wechat", openid) that the WeChat
chat uses too, so a resident is one player in the chat and on the page; the openid itself is kept nowhere. A
browser player (`ff_quiz`) is a random id issued on the first visit.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from bot.vault import Vault
from quizzes import campaigns

COOKIE = "ff_quiz"
COOKIE_DAYS = 365
WECHAT_COOKIE = "ff_quiz_wx"
WECHAT_DAYS = 30  # then a silent sign-in again (same openid, same player)


@dataclass(frozen=True)
class Player:
    key: str  # the stored stand-in (quiz_players.key)
    issue: str | None = None  # a browser id to set as the cookie with the response


class Players:
    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def _sign(self, kind: str, value: str) -> str:
        return self.vault.fingerprint(kind, value)[:32]

    def _signed(self, request: Request, cookie: str, kind: str) -> str | None:
        value, _, signature = request.cookies.get(cookie, "").partition(".")
        if value and signature and hmac.compare_digest(signature, self._sign(kind, value)):
            return value
        return None

    def browser(self, request: Request) -> str | None:
        """The browser player's id from a cookie we signed, or None."""
        return self._signed(request, COOKIE, "quiz-cookie")

    def wechat(self, request: Request) -> str | None:
        """The signed-in WeChat resident's player key, or None."""
        return self._signed(request, WECHAT_COOKIE, "quiz-wechat-session")

    def known(self, request: Request) -> Player | None:
        """The player this request comes from, if it carries one (for answering: never a new one)."""
        key = self.wechat(request)
        if key is not None:
            return Player(key)
        ident = self.browser(request)
        return Player(campaigns.player_key(self.vault, "cookie", ident)) if ident is not None else None

    def of(self, request: Request) -> Player:
        """The player this request comes from; a new browser player when it carries none."""
        known = self.known(request)
        if known is not None:
            return known
        ident = secrets.token_urlsafe(16)
        return Player(campaigns.player_key(self.vault, "cookie", ident), issue=ident)

    def remember(self, response: Response, request: Request, player: Player) -> Response:
        """Set a newly issued browser id as the response's cookie."""
        if player.issue is not None:
            response.set_cookie(COOKIE, f"{player.issue}.{self._sign('quiz-cookie', player.issue)}",
                                max_age=COOKIE_DAYS * 86400, httponly=True, samesite="lax",
                                secure=request.url.scheme == "https", path="/")
        return response

    def sign_in(self, response: Response, secure: bool, openid: str) -> Response:
        """Make the response's browser the WeChat resident `openid` (only its keyed fingerprint is written)."""
        key = campaigns.player_key(self.vault, "wechat", openid)
        response.set_cookie(WECHAT_COOKIE, f"{key}.{self._sign('quiz-wechat-session', key)}",
                            max_age=WECHAT_DAYS * 86400, httponly=True, samesite="lax", secure=secure, path="/")
        return response
