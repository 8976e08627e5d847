"""Shared pieces of the quiz page's WeChat tests: settings that turn sign-in and the share card on against a fake
WeChat, the app built on them, a resident's WeChat browser that follows redirects through both servers, and the
database scan for a value kept in plain text."""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import LargeBinary, Text, cast, select

from bot.channels.wechat_api import WeChatApi
from bot.config import Settings
from bot.engine import Engine
from bot.services import Services
from bot.storage.database import Database
from bot.storage.models import Base
from bot.web.app import create_app
from tests.fake_wechat import FakeWeChat

PUBLIC = "http://quiz.test"
WECHAT_UA = ("Mozilla/5.0 (Linux; Android 13; V2219A) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 "
             "Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160065 MMWEBSDK/20231202 MicroMessenger/8.0.47.2560"
             "(0x28002F35) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64")


def wechat_settings(settings: Settings, fake: FakeWeChat, public: str = PUBLIC, *, sign_in: bool = True,
                    share: bool = True) -> Settings:
    wechat = settings.wechat.model_copy(update={
        "app_id": fake.appid, "app_secret": fake.secret, "api_base_url": fake.api_base_url,
        "oauth_base_url": fake.api_base_url, "page_sign_in": sign_in, "page_share": share})
    return settings.model_copy(update={"wechat": wechat,
                                       "http": settings.http.model_copy(update={"public_url": public})})


def wechat_services(services: Services, settings: Settings, db: Database | None = None) -> Services:
    made = dataclasses.replace(services, settings=settings, db=db or services.db)
    made.quiz_questions = services.quiz_questions
    return made


def wechat_app(services: Services, api: WeChatApi) -> Any:
    return create_app(Engine(services), wechat_api=api)


class WeChatBrowser:
    """A resident's browser inside WeChat: our app in process, WeChat's pages over real HTTP on the fake."""

    def __init__(self, app: Any, fake: FakeWeChat) -> None:
        self.fake = fake
        self.app = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC,
                                     headers={"User-Agent": WECHAT_UA})
        self.wechat = httpx.AsyncClient(headers={"User-Agent": WECHAT_UA})

    async def close(self) -> None:
        await self.app.aclose()
        await self.wechat.aclose()

    async def open(self, path: str, hops: int = 6) -> tuple[httpx.Response, list[str]]:
        """Open `path` and follow redirects between our app and WeChat; the last answer and the addresses seen."""
        seen: list[str] = []
        url = f"{PUBLIC}{path}"
        for _ in range(hops):
            seen.append(url)
            ours = url.startswith(PUBLIC)
            client = self.app if ours else self.wechat
            res = await client.get(url.split("#", 1)[0])
            if res.status_code not in (301, 302, 303, 307):
                return res, seen
            location = res.headers["location"]
            url = location if "://" in location else f"{PUBLIC}{location}"
        raise AssertionError(f"a redirect loop: {seen}")

    def drop_cookie(self, name: str) -> None:
        for cookie in list(self.app.cookies.jar):
            if cookie.name == name:
                self.app.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def plain_text_hits(db: Database, needle: str) -> list[str]:
    """Every table.column whose stored text contains `needle`."""
    hits = []
    async with db.session() as session:
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                if not isinstance(column.type, LargeBinary):
                    rows = await session.execute(select(column).where(cast(column, Text).contains(needle)))
                    if rows.first() is not None:
                        hits.append(f"{table.name}.{column.name}")
    return hits
