"""What the console tests share: staff accounts, tips in two townships, and a signed-in httpx client."""

from __future__ import annotations

import re

import httpx

from bot.services import Services
from bot.staff import accounts
from bot.tips import ledger
from bot.tips.ledger import Report

PASSWORD = "correct horse battery"
NAME, PHONE = "张秀英", "13912345678"


async def add_staff(services: Services, *people: tuple[str, str, list[str]]) -> None:
    async with services.db.transaction() as session:
        for name, role, townships in people:
            await accounts.add(session, services.settings, name, role, townships, PASSWORD)


async def file_two_townships(services: Services) -> tuple[str, str]:
    """A named Telegram tip in 城关镇 and an anonymous WeChat tip in 河口乡."""
    postgres = not services.db.is_sqlite
    async with services.db.transaction() as session:
        town = await ledger.file(session, services.vault, "telegram", "1009", Report(
            what="有人在城关镇开讲座，说投养老公寓年息百分之二十", township="城关镇", village="东街社区",
            anonymous=False, name=NAME, contact=PHONE), "pension-elderly-care", postgres)
        river = await ledger.file(session, services.vault, "wechat", "o-river-1", Report(
            what="河口村有人收钱入股合作社，说每月分红", township="河口乡", village="河口村"), None, postgres)
    return town.receipt, river.receipt


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> httpx.Response:
    form = await client.get("/console/login")
    return await client.post("/console/login", data={"csrf": csrf_of(form.text), "username": name,
                                                     "password": password})


async def page_csrf(client: httpx.AsyncClient, path: str = "/console/") -> str:
    return csrf_of((await client.get(path)).text)
