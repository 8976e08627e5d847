"""WeChat sign-in for the quiz page: web OAuth with scope `snsapi_base` (silent: WeChat asks the resident nothing),
so a resident who opens the page inside WeChat plays as their openid, the same player on every phone and in the
WeChat chat (bot/web/quiz_player.py).

The page sends such a visitor once to WeChat's authorize address (built by wechatpy's WeChatOAuth) with a `state`
that is signed, expires in STATE_SECONDS, names the page to return to and matches a nonce cookie of this browser
(so a sign-in started elsewhere cannot be finished here). WeChat comes back to CALLBACK with a `code`, which our
async client exchanges for the openid; the browser then gets the signed WeChat session cookie and returns to the
page. Whatever goes wrong (no code, a forged, expired or foreign state, a code used already, WeChat down or
answering an error) the resident lands on the page with `?wx=failed`: it plays with the browser's own cookie, says
so in one line, and does not send them to WeChat again on that visit. Logs never carry a code or an openid.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from wechatpy.oauth import WeChatOAuth

from bot.channels.wechat_api import WeChatApi, WeChatApiError
from bot.services import Services
from bot.web.app import templates
from bot.web.quiz_player import Players

log = logging.getLogger(__name__)
CALLBACK = "/quiz-signin/wechat"
STATE_SECONDS = 600
NONCE_COOKIE = "ff_quiz_wx_try"
MARK = "wx"  # ?wx=failed: this visit's sign-in did not work; the page plays without it
FAILED = "failed"
PAGE = re.compile(r"/quiz/[a-z0-9][a-z0-9-]{1,63}")  # the only places a sign-in returns to
MAX_CODE = 128
BAD_LINK = "这个链接不完整。请回到群里，重新点开答题链接。"


def in_wechat(request: Request) -> bool:
    return "MicroMessenger" in request.headers.get("user-agent", "")


class WeChatSignIn:
    def __init__(self, services: Services, api: WeChatApi, players: Players) -> None:
        self.services, self.api, self.players = services, api, players
        self.wechat, self.public_url = services.settings.wechat, services.settings.http.public_url

    def routes(self) -> list[Route]:
        return [Route(CALLBACK, self.callback, methods=["GET"])]

    def wanted(self, request: Request) -> bool:
        """Whether this page visit should go to WeChat to sign in first."""
        return (in_wechat(request) and MARK not in request.query_params
                and self.players.wechat(request) is None)

    def _sign(self, page: str, expires: str, nonce: str) -> str:
        return self.services.vault.fingerprint("quiz-wechat-state", page, expires, nonce)[:32]

    def start(self, page: str) -> Response:
        """Off to WeChat's authorize address; it comes back to CALLBACK, then to `page` (a PAGE path)."""
        expires, nonce = f"{int(time.time()) + STATE_SECONDS:08x}", secrets.token_hex(8)
        state = expires + nonce + self._sign(page, expires, nonce)  # 56 of [0-9a-f]: WeChat allows 128 [a-zA-Z0-9]
        oauth = WeChatOAuth(self.wechat.app_id, self.wechat.app_secret,
                            f"{self.public_url}{CALLBACK}?next={quote(page, safe='/')}", "snsapi_base", state)
        oauth.OAUTH_BASE_URL = f"{self.wechat.oauth_base_url.rstrip('/')}/connect/"
        response = RedirectResponse(oauth.authorize_url, status_code=302)
        response.set_cookie(NONCE_COOKIE, nonce, max_age=STATE_SECONDS, httponly=True, samesite="lax",
                            secure=self.public_url.startswith("https://"), path=CALLBACK)
        return response

    def _state_problem(self, request: Request, page: str) -> str | None:
        state = request.query_params.get("state", "")
        if not re.fullmatch(r"[0-9a-f]{56}", state):
            return "no state" if not state else "malformed state"
        expires, nonce, signature = state[:8], state[8:24], state[24:]
        if not hmac.compare_digest(signature, self._sign(page, expires, nonce)):
            return "forged state"
        if int(expires, 16) < time.time():
            return "expired state"
        if not hmac.compare_digest(request.cookies.get(NONCE_COOKIE, ""), nonce):
            return "state of another browser"
        return None

    async def callback(self, request: Request) -> Response:
        page = request.query_params.get("next", "")
        if not PAGE.fullmatch(page):
            log.warning("wechat sign-in: refused a return to an address that is not a quiz page")
            return templates.TemplateResponse(request, "quiz_404.html", {"root": "../", "message": BAD_LINK},
                                              status_code=400)
        problem = self._state_problem(request, page)
        code = request.query_params.get("code", "")
        if problem is None and not code:
            problem = "no code (the resident did not allow it)"
        elif problem is None and (len(code) > MAX_CODE or not code.isascii() or not code.isprintable()):
            problem = "malformed code"
        openid = None
        if problem is None:
            try:
                openid = await self.api.oauth_openid(code)
            except WeChatApiError as exc:
                problem = str(exc)
        if openid is None:
            log.warning("wechat sign-in: not signed in: %s", problem)
            response = RedirectResponse(f"{page}?{MARK}={FAILED}", status_code=302)
        else:
            response = self.players.sign_in(RedirectResponse(page, status_code=302),
                                            self.public_url.startswith("https://"), openid)
        response.delete_cookie(NONCE_COOKIE, path=CALLBACK)  # one try per sign-in
        return response
