"""WeChat Official Account API over our own async HTTP client (wechatpy has no asyncio client).

The access token comes from the `stable_token` endpoint and the JS-SDK ticket from `getticket`; both are cached
in the database (`api_tokens`), so every process shares one. Network and server errors are retried with backoff;
an expired token is refreshed once; quota and window errors (45015, 45047 …) are returned to the caller to be
recorded, never retried blindly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import WeChatSettings
from bot.storage.database import Database
from bot.storage.models import ApiToken

log = logging.getLogger(__name__)
TOKEN_NAME = "wechat"
TICKET_NAME = "wechat-jsapi"
REFRESH_MARGIN = timedelta(minutes=5)  # a credential with less left is replaced before it is used
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
TOKEN_ERRORS = {40001, 40014, 42001}
NO_RETRY = {45015, 45047, 43004, 40003}  # outside the 48-hour window, over quota, unfollowed, unknown user


@dataclass(frozen=True)
class ApiResult:
    ok: bool
    errcode: int = 0
    errmsg: str = ""
    msg_id: str | None = None  # what a template or mass send answers with


class WeChatApiError(Exception):
    """No answer from WeChat. `unsure`: the request may have reached it (a timeout or a dropped connection after
    it was written), so what it asked for may have happened; otherwise it surely did not (no connection, or
    WeChat answered with a server error)."""

    def __init__(self, message: str, unsure: bool = False) -> None:
        super().__init__(message)
        self.unsure = unsure


# transport errors after which the request surely never reached WeChat (as bot/outbox.py's NOT_SENT)
NOT_SENT: tuple[type[httpx.TransportError], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                                                    httpx.UnsupportedProtocol)


class WeChatApi:
    def __init__(self, settings: WeChatSettings, db: Database, retries: int = 2, timeout: float = 5.0) -> None:
        self.settings, self.db, self.retries = settings, db, retries
        self.http = httpx.AsyncClient(base_url=settings.api_base_url, timeout=timeout)
        self._locks: dict[str, asyncio.Lock] = {}  # one refresh at a time per credential in this process

    async def close(self) -> None:
        await self.http.aclose()

    async def send_text(self, openid: str, content: str) -> ApiResult:
        """A customer-service text message (allowed within 48 hours after the user wrote)."""
        return await self.call("/cgi-bin/message/custom/send",
                               {"touser": openid, "msgtype": "text", "text": {"content": content}})

    async def send_template(self, openid: str, template_id: str, data: dict[str, str], *, url: str = "",
                            miniprogram: dict[str, str] | None = None) -> ApiResult:
        """A template message (service accounts; allowed outside the 48-hour window). Sent once: a failure is
        raised to the caller (whose outbox retries what surely did not arrive), never repeated here."""
        payload: dict[str, Any] = {"touser": openid, "template_id": template_id,
                                   "data": {key: {"value": value} for key, value in data.items()}}
        if url:
            payload["url"] = url
        if miniprogram:
            payload["miniprogram"] = miniprogram
        return await self.call("/cgi-bin/message/template/send", payload, retries=0)

    async def send_mass(self, tag_id: int, content: str) -> ApiResult:
        """A mass text (群发) to the followers with a tag; never repeated here (it counts against a scarce quota)."""
        return await self.call("/cgi-bin/message/mass/sendall",
                               {"filter": {"is_to_all": False, "tag_id": tag_id}, "msgtype": "text",
                                "text": {"content": content}}, retries=0)

    async def untag(self, openid: str, tag_id: int) -> ApiResult:
        """Take a follower out of a tag (harmless to repeat: one not in it stays out)."""
        return await self.call("/cgi-bin/tags/members/batchuntagging", {"openid_list": [openid], "tagid": tag_id})

    async def create_menu(self, buttons: list[dict[str, Any]]) -> ApiResult:
        return await self.call("/cgi-bin/menu/create", {"button": buttons})

    async def call(self, path: str, payload: dict[str, Any], retries: int | None = None) -> ApiResult:
        """POST to the API with the shared token; an expired or replaced token (40001, 42001 …) is refreshed once
        and the call made again (WeChat refused the first: nothing happened)."""
        token = await self.token()
        for refreshed in (False, True):
            body = await self._request("POST", path, json=payload, params={"access_token": token}, retries=retries)
            code = int(body.get("errcode", 0))
            if code in TOKEN_ERRORS and not refreshed:
                token = await self.token(force=True, stale=token)
                continue
            if code:
                log.warning("wechat %s failed: errcode %s", path, code)
            msg_id = body.get("msg_id", body.get("msgid"))
            return ApiResult(code == 0, code, str(body.get("errmsg", "")),
                             str(msg_id) if msg_id is not None else None)
        raise AssertionError("unreachable")

    async def token(self, force: bool = False, stale: str | None = None) -> str:
        """The shared access token; `force` replaces `stale` unless another process already did."""
        async def fetch() -> tuple[str, int]:
            body = await self._request("POST", "/cgi-bin/stable_token", json={
                "grant_type": "client_credential", "appid": self.settings.app_id,
                "secret": self.settings.app_secret, "force_refresh": force})
            if "access_token" not in body:
                raise WeChatApiError(f"stable_token refused: errcode {body.get('errcode')}")
            return str(body["access_token"]), int(body.get("expires_in", 7200))

        return await self._shared(TOKEN_NAME, fetch, stale)

    async def jsapi_ticket(self) -> str:
        """The shared JS-SDK ticket (fetched with the access token; a stale or expired token is refreshed once)."""
        async def fetch() -> tuple[str, int]:
            token = await self.token()
            for refreshed in (False, True):
                body = await self._request("GET", "/cgi-bin/ticket/getticket",
                                           params={"access_token": token, "type": "jsapi"})
                code = int(body.get("errcode", 0))
                if code in TOKEN_ERRORS and not refreshed:
                    token = await self.token(force=True, stale=token)
                    continue
                if code or "ticket" not in body:
                    raise WeChatApiError(f"getticket refused: errcode {code}")
                return str(body["ticket"]), int(body.get("expires_in", 7200))
            raise AssertionError("unreachable")

        return await self._shared(TICKET_NAME, fetch, None)

    async def oauth_openid(self, code: str) -> str:
        """The openid a web sign-in `code` stands for (snsapi_base; a code works once, for 5 minutes)."""
        body = await self._request("GET", "/sns/oauth2/access_token", retries=1, params={
            "appid": self.settings.app_id, "secret": self.settings.app_secret, "code": code,
            "grant_type": "authorization_code"})
        openid = body.get("openid")
        if body.get("errcode") or not isinstance(openid, str) or not openid:
            raise WeChatApiError(f"oauth2/access_token refused: errcode {body.get('errcode')}")
        return openid

    async def _shared(self, name: str, fetch: Callable[[], Awaitable[tuple[str, int]]], stale: str | None) -> str:
        """A credential every process shares through `api_tokens`: the stored one while it has over
        REFRESH_MARGIN left and is not `stale`, else a new one from `fetch` (value, seconds), stored. One fetch
        at a time per process; on PostgreSQL the row is held during the fetch, so other processes wait for it
        instead of fetching too (on SQLite, normally one process, they may fetch twice)."""
        async with self.db.session() as session:
            row = await session.get(ApiToken, name)
            if _fresh(row, stale):
                return row.value  # type: ignore[union-attr]
        async with self._locks.setdefault(name, asyncio.Lock()):
            if self.db.is_sqlite:
                async with self.db.session() as session:
                    row = await session.get(ApiToken, name)
                    if _fresh(row, stale):
                        return row.value  # type: ignore[union-attr]
                value, seconds = await fetch()
                async with self.db.transaction() as session:
                    await _store(session, name, value, seconds)
                return value
            async with self.db.session() as session, session.begin():
                await session.execute(pg_insert(ApiToken).values(name=name, value="", expires_at=EPOCH)
                                      .on_conflict_do_nothing())
                row = await session.scalar(select(ApiToken).where(ApiToken.name == name).with_for_update()
                                           .execution_options(populate_existing=True))
                if _fresh(row, stale):
                    return row.value  # type: ignore[union-attr]
                value, seconds = await fetch()
                await _store(session, name, value, seconds)
            return value

    async def _request(self, method: str, path: str, *, json: dict[str, Any] | None = None,
                       params: dict[str, str] | None = None, retries: int | None = None) -> dict[str, Any]:
        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            try:
                res = await self.http.request(method, path, json=json, params=params)
                if res.status_code >= 500:
                    raise httpx.HTTPStatusError("server error", request=res.request, response=res)
                body = res.json()
                if body.get("errcode") == -1 and attempt < retries:  # "system busy": worth another try
                    raise httpx.HTTPStatusError("system busy", request=res.request, response=res)
                return body if isinstance(body, dict) else {}
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                if attempt == retries:
                    unsure = isinstance(exc, httpx.TransportError) and not isinstance(exc, NOT_SENT)
                    raise WeChatApiError(f"{path}: {exc.__class__.__name__}", unsure) from exc
                await asyncio.sleep(0.3 * 2 ** attempt)
            except ValueError as exc:  # not JSON (a proxy's error page)
                raise WeChatApiError(f"{path}: the answer is not JSON") from exc
        raise AssertionError("unreachable")


def _fresh(row: ApiToken | None, stale: str | None) -> bool:
    return (row is not None and bool(row.value) and row.value != stale
            and _aware(row.expires_at) > datetime.now(UTC) + REFRESH_MARGIN)


async def _store(session: AsyncSession, name: str, value: str, seconds: int) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=seconds)
    row = await session.get(ApiToken, name)
    if row is None:
        session.add(ApiToken(name=name, value=value, expires_at=expires))
    else:
        row.value, row.expires_at = value, expires


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
