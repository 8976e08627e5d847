"""The quiz page (README, "Quiz campaigns"): the page residents open from a link shared into a village group, and the
certificate page and picture anyone can check by the certificate's code.

The page is rendered here (campaign, region picker); its script (static/quiz.js) plays through the JSON API of
bot/web/quiz_api.py. Inside WeChat, when configured, a resident is signed in first (bot/web/wechat_signin.py) and the
page sets its share card (bot/web/wechat_share.py). Nothing here asks for a phone number, and nothing offers
anything for sharing.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.channels.wechat_api import WeChatApi
from bot.services import Services
from bot.web.app import templates
from bot.web.quiz_player import Players
from bot.web.wechat_share import WeChatShare
from bot.web.wechat_signin import FAILED, MARK, PAGE, WeChatSignIn, in_wechat
from quizzes import campaigns
from quizzes.campaigns import Certificate, Region

# CJK fonts Debian ships (fonts-wqy-microhei, which scripts/test installs; fonts-noto-cjk; fonts-wqy-zenhei)
CJK_FONTS = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
             "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
             "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
NOT_FOUND_CAMPAIGN = "没有找到这个答题活动。请检查链接是否完整，或向发链接的人再要一次。"
NOT_FOUND_CERTIFICATE = "没有找到这张证书。请核对证书编号，编号只有大写字母和数字。"


class QuizPage:
    def __init__(self, services: Services, wechat_api: WeChatApi | None = None) -> None:
        self.services = services
        wechat = services.settings.wechat
        self.signin = (WeChatSignIn(services, wechat_api, Players(services.vault))
                       if wechat.page_sign_in and wechat_api is not None else None)
        self.share = WeChatShare(services, wechat_api) if wechat.page_share and wechat_api is not None else None

    def routes(self) -> list[Route]:
        return [Route("/quiz/{slug}", self.page, methods=["GET"]),
                Route("/quiz/{slug}/certificate/{code}.png", self.picture, methods=["GET"]),  # before the page
                Route("/quiz/{slug}/certificate/{code}", self.certificate, methods=["GET"]),
                *(self.signin.routes() if self.signin else ()), *(self.share.routes() if self.share else ())]

    async def page(self, request: Request) -> Response:
        async with self.services.db.session() as session:
            campaign = await campaigns.find(session, request.path_params["slug"])
        if campaign is None:
            return _not_found(request, NOT_FOUND_CAMPAIGN, "../")
        is_open = campaigns.is_open(campaign)
        if is_open and self.signin is not None and self.signin.wanted(request) and PAGE.fullmatch(request.url.path):
            return self.signin.start(request.url.path)
        places = campaigns.regions(self.services.settings.region, campaign)
        wechat = in_wechat(request) and (self.signin or self.share) is not None
        return templates.TemplateResponse(request, "quiz.html", {
            "root": "../", "campaign": campaign, "open": is_open,
            "townships": _townships(self.services, places), "schools": [p for p in places if p.kind == "school"],
            "signin_failed": self.signin is not None and request.query_params.get(MARK) == FAILED,
            "wechat_script": wechat, "share": wechat and self.share is not None, **_facts(self.services)})

    async def _certificate(self, request: Request) -> Certificate | None:
        async with self.services.db.session() as session:
            return await campaigns.certificate(session, request.path_params["slug"], request.path_params["code"])

    async def certificate(self, request: Request) -> Response:
        found = await self._certificate(request)
        if found is None:
            return _not_found(request, NOT_FOUND_CERTIFICATE, "../../../")
        return templates.TemplateResponse(request, "certificate.html", {
            "root": "../../../", "slug": request.path_params["slug"], "cert": found, **_facts(self.services)})

    async def picture(self, request: Request) -> Response:
        found = await self._certificate(request)
        if found is None:
            return _not_found(request, NOT_FOUND_CERTIFICATE, "../../../")
        png = await run_in_threadpool(certificate_png, found, self.services.settings.region.region)
        return Response(png, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})


def _townships(services: Services, places: list[Region]) -> list[dict[str, Any]]:
    """The campaign's villages grouped by township, in config.yaml's order, for the township → village picker."""
    names = {t.code: t.name for t in services.settings.region.townships}
    grouped: dict[str, list[dict[str, str]]] = {}
    for place in places:
        if place.kind == "village":
            village = place.name.removeprefix(names.get(place.township, "")).strip()
            grouped.setdefault(place.township, []).append({"code": place.code, "name": village})
    return [{"code": code, "name": names.get(code, code), "villages": villages} for code, villages in grouped.items()]


def _facts(services: Services) -> dict[str, str]:
    return {"region": services.settings.region.region, "hotline": services.settings.region.hotline}


def _not_found(request: Request, message: str, root: str) -> Response:
    return templates.TemplateResponse(request, "quiz_404.html", {"root": root, "message": message},
                                      status_code=404)


@lru_cache(maxsize=1)
def cjk_font_path() -> str | None:
    return next((path for path in CJK_FONTS if Path(path).is_file()), None)


def certificate_png(cert: Certificate, region: str) -> bytes:
    """The certificate as a picture (for schools that ask for a screenshot). Without a CJK font on the machine it
    shows only what Latin letters can: the code, the score and the date."""
    width, height = 1080, 760
    image = Image.new("RGB", (width, height), "#fffaf0")
    draw = ImageDraw.Draw(image)
    draw.rectangle((24, 24, width - 25, height - 25), outline="#b22222", width=8)
    draw.rectangle((44, 44, width - 45, height - 45), outline="#d4a017", width=3)
    path = cjk_font_path()

    def font(size: int) -> Any:
        return ImageFont.truetype(path, size) if path else ImageFont.load_default(size)

    if path:
        lines = [(f"{region}防范非法集资", 40, "#333333"), ("答题证书", 84, "#b22222"),
                 (cert.name, 64, "#222222"), (cert.campaign, 38, "#333333"),
                 (f"成绩：{cert.score} / {cert.total}", 48, "#222222"),
                 (f"日期：{cert.day}    编号：{cert.code}", 32, "#555555")]
    else:
        lines = [("CERTIFICATE", 84, "#b22222"), (f"{cert.score} / {cert.total}", 64, "#222222"),
                 (cert.day, 40, "#333333"), (cert.code, 48, "#555555")]
    gap = 36
    fonts = []
    for text, size, _ in lines:  # a long name or campaign gets smaller type rather than running off the edge
        while size > 16 and draw.textlength(text, font=font(size)) > width - 160:
            size -= 4
        fonts.append(font(size))
    heights = [draw.textbbox((0, 0), text, font=f)[3] for (text, _, _), f in zip(lines, fonts, strict=True)]
    y = (height - sum(heights) - gap * (len(lines) - 1)) // 2
    for (text, _, colour), f, h in zip(lines, fonts, heights, strict=True):
        draw.text((width // 2, y), text, font=f, fill=colour, anchor="ma")
        y += h + gap
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
