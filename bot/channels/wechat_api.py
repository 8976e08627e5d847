"""WeChat Official Account API over our own async HTTP client (wechatpy has no asyncio client).

The access token comes from the `stable_token` endpoint and is cached in the database, so every process shares
one. Network and server errors are retried with backoff; an expired token is refreshed once; quota and window
errors (45015, 45047 …) are returned to the caller to be recorded, never retried blindly.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bot.config import WeChatSettings
from bot.storage.database import Database
from bot.storage.models import ApiToken

log = logging.getLogger(__name__)
TOKEN_NAME = "wechat"
TOKEN_ERRORS = {40001, 40014, 42001}
NO_RETRY = {45015, 45047, 43004, 40003}  # outside the 48-hour window, over quota, unfollowed, unknown user


@dataclass(frozen=True)
class ApiResult:
    ok: bool
    errcode: int = 0
    errmsg: str = ""


class WeChatApiError(Exception):
    pass


class WeChatApi:
    def __init__(self, settings: WeChatSettings, db: Database, retries: int = 2, timeout: float = 5.0) -> None:
        self.settings, self.db, self.retries = settings, db, retries
        self.http = httpx.AsyncClient(base_url=settings.api_base_url, timeout=timeout)
        self._refresh = asyncio.Lock()

    async def close(self) -> None:
        await self.http.aclose()

    async def send_text(self, openid: str, content: str) -> ApiResult:
        """A customer-service text message (allowed within 48 hours after the user wrote)."""
        return await self.call("/cgi-bin/message/custom/send",
                               {"touser": openid, "msgtype": "text", "text": {"content": content}})

    async def create_menu(self, buttons: list[dict[str, Any]]) -> ApiResult:
        return await self.call("/cgi-bin/menu/create", {"button": buttons})

    async def call(self, path: str, payload: dict[str, Any]) -> ApiResult:
        token = await self.token()
        for refreshed in (False, True):
            body = await self._post(path, payload, params={"access_token": token})
            code = int(body.get("errcode", 0))
            if code in TOKEN_ERRORS and not refreshed:
                token = await self.token(force=True, stale=token)
                continue
            if code:
                log.warning("wechat %s failed: errcode %s", path, code)
            return ApiResult(code == 0, code, str(body.get("errmsg", "")))
        raise AssertionError("unreachable")

    async def token(self, force: bool = False, stale: str | None = None) -> str:
        """The shared access token; `force` replaces `stale` unless another process already did."""
        async with self._refresh:
            async with self.db.session() as session:
                row = await session.get(ApiToken, TOKEN_NAME)
                now = datetime.now(UTC)
                if row is not None and row.value != stale and _aware(row.expires_at) > now + timedelta(minutes=5):
                    return row.value
                body = await self._post("/cgi-bin/stable_token", {
                    "grant_type": "client_credential", "appid": self.settings.app_id,
                    "secret": self.settings.app_secret, "force_refresh": force})
                if "access_token" not in body:
                    raise WeChatApiError(f"stable_token refused: errcode {body.get('errcode')}")
                expires = now + timedelta(seconds=int(body.get("expires_in", 7200)))
                if row is None:
                    session.add(ApiToken(name=TOKEN_NAME, value=body["access_token"], expires_at=expires))
                else:
                    row.value, row.expires_at = body["access_token"], expires
                await session.commit()
                return str(body["access_token"])

    async def _post(self, path: str, payload: dict[str, Any], params: dict[str, str] | None = None
                    ) -> dict[str, Any]:
        for attempt in range(self.retries + 1):
            try:
                res = await self.http.post(path, json=payload, params=params)
                if res.status_code >= 500:
                    raise httpx.HTTPStatusError("server error", request=res.request, response=res)
                body = res.json()
                if body.get("errcode") == -1 and attempt < self.retries:  # "system busy": worth another try
                    raise httpx.HTTPStatusError("system busy", request=res.request, response=res)
                return body if isinstance(body, dict) else {}
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                if attempt == self.retries:
                    raise WeChatApiError(f"{path}: {exc.__class__.__name__}") from exc
                await asyncio.sleep(0.3 * 2 ** attempt)
        raise AssertionError("unreachable")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
