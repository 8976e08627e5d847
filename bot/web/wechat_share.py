"""The quiz page's share card inside WeChat: the JS-SDK configuration for the page's own address.

The page's script (static/quiz-wechat.js, with the vendored static/jweixin-1.6.0.js) asks SHARE_PATH for its
address as the browser has it (without the #fragment) and gets `wx.config`'s signature, the sha1 of the shared
jsapi_ticket, a nonce, a timestamp and that address, plus the card: the campaign's name, a plain description and
the page's link. Only addresses of this campaign's page under http.public_url are signed. Sharing gives nothing
(WeChat bans rewards for shares, 诱导分享): nothing here writes anything but the cached ticket.
"""

from __future__ import annotations

import logging
import secrets
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from wechatpy.utils import WeChatSigner

from bot.channels.wechat_api import WeChatApi, WeChatApiError
from bot.services import Services
from quizzes import campaigns

log = logging.getLogger(__name__)
SHARE_PATH = "/api/quiz/{slug}/wechat-share"
MAX_URL = 1024
NO_STORE = {"Cache-Control": "no-store"}


def signature(ticket: str, nonce: str, timestamp: int, url: str) -> str:
    """wx.config's signature: sha1 of the four fields in WeChat's order (wechatpy's signer sorts them)."""
    signer = WeChatSigner(delimiter=b"&")
    signer.add_data(f"jsapi_ticket={ticket}", f"noncestr={nonce}", f"timestamp={timestamp}", f"url={url}")
    return signer.signature


class WeChatShare:
    def __init__(self, services: Services, api: WeChatApi) -> None:
        self.services, self.api = services, api
        self.public_url = services.settings.http.public_url

    def routes(self) -> list[Route]:
        return [Route(SHARE_PATH, self.config, methods=["GET"])]

    async def config(self, request: Request) -> Response:
        slug = request.path_params["slug"]
        async with self.services.db.session() as session:
            campaign = await campaigns.find(session, slug)
        if campaign is None:
            return JSONResponse({"error": "no such campaign", "kind": "not-found"}, status_code=404)
        link = f"{self.public_url}/quiz/{slug}"
        url = request.query_params.get("url", "")
        if len(url) > MAX_URL or "#" in url or not (url == link or url.startswith(link + "?")):
            return JSONResponse({"error": f"url must be this campaign's page, {link}, without its #fragment"},
                                status_code=400)
        try:
            ticket = await self.api.jsapi_ticket()
        except WeChatApiError as exc:
            log.warning("wechat share card: no JS-SDK ticket: %s", exc)
            return JSONResponse({"error": "WeChat is not answering; the page works without its share card"},
                                status_code=503, headers=NO_STORE)
        nonce, timestamp = secrets.token_hex(8), int(time.time())
        region = self.services.settings.region.region
        return JSONResponse({
            "appId": self.services.settings.wechat.app_id, "timestamp": timestamp, "nonceStr": nonce,
            "signature": signature(ticket, nonce, timestamp, url), "title": campaign.name,
            "desc": f"{region}防范非法集资知识答题，共 {campaign.questions} 道题，答完就能看到讲解。",
            "link": link, "imgUrl": f"{self.public_url}/static/quiz-card.png"}, headers=NO_STORE)
