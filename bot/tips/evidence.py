"""Evidence kept by us: the photos and files sent with tips, fetched from the platform and sealed at rest.

An evidence row first holds only the platform's reference (a Telegram file_id, a WeChat MediaId). WeChat deletes
temporary media after 3 days, so each file is fetched once through the outbox (bot/outbox.py): channel
"fetch-telegram" or "fetch-wechat", target the evidence id, dedup `evidence:<id>`. A fetch that fails for a while
(network, server, token) is retried with backoff; a file the platform no longer has (WeChat 40007, Telegram "invalid
file_id") or one larger than allowed fails for good, with the reason in the outbox row (see `fetch_states`).

Evidence may show people's names and faces, so the bytes are stored sealed with the vault key, like a reporter's
identity: `vault.seal_bytes(bytes)` in `tip_evidence.content_sealed`. Logs name evidence by id, never by content.
"""

from __future__ import annotations

import json
import logging
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Protocol

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Bot
from telegram.error import TelegramError

from bot.channels.telegram_errors import delivery_outcome
from bot.channels.wechat_api import TOKEN_ERRORS, WeChatApiError
from bot.outbox import FAILED, PENDING, Outcome, Sender, enqueue
from bot.storage.database import Database
from bot.storage.models import OutboxMessage, Tip, TipEvidence, utcnow
from bot.vault import Vault

log = logging.getLogger(__name__)
FETCH_CHANNELS = {"telegram": "fetch-telegram", "wechat": "fetch-wechat"}  # tip channel -> outbox channel
WECHAT_GONE = {40007, 41006}  # invalid (or expired) media_id, media_id missing: asking again changes nothing
MAX_CONTENT_TYPE = 64
DEFAULT_TIMEOUT = 30.0  # seconds for one download; keep it under the outbox lease (60 s by default)
OCTET_STREAM = "application/octet-stream"


class TokenProvider(Protocol):
    """The WeChat access token: `WeChatApi.token` (cached in the database, shared by every process)."""

    async def __call__(self, force: bool = False, stale: str | None = None) -> str: ...


@dataclass(frozen=True)
class _Wanted:
    """An evidence row still to fetch."""

    id: int
    kind: str
    ref: str
    name: str | None


def dedup_of(evidence_id: int) -> str:
    return f"evidence:{evidence_id}"


async def queue_fetches(session: AsyncSession, tip: Tip, postgres: bool) -> int:
    """Queue a fetch of each evidence file of the tip not kept yet, in the caller's transaction (call it right after
    `ledger.file`). Returns how many were newly queued: a file already queued or kept is not queued again."""
    channel = FETCH_CHANNELS.get(tip.channel)
    if channel is None:  # web, local: nothing on a platform to fetch
        return 0
    await session.flush()  # the evidence rows `ledger.file` just added
    ids = list(await session.scalars(select(TipEvidence.id)
                                     .where(TipEvidence.tip_id == tip.id, TipEvidence.fetched_at.is_(None))
                                     .order_by(TipEvidence.id)))
    queued = 0
    for evidence_id in ids:
        if await enqueue(session, dedup=dedup_of(evidence_id), channel=channel, target=str(evidence_id), payload={},
                         postgres=postgres):
            queued += 1
    return queued


async def content(session: AsyncSession, vault: Vault, evidence: TipEvidence) -> bytes | None:
    """The file's bytes, or None while it is not fetched. Raises SealError when another key sealed it."""
    sealed = await session.scalar(select(TipEvidence.content_sealed).where(TipEvidence.id == evidence.id))
    if sealed is None:
        return None
    return vault.open_bytes(sealed)


async def fetch_states(session: AsyncSession, evidence: Sequence[TipEvidence]) -> dict[int, str]:
    """Where each file stands, by evidence id: "kept", "fetching", "failed: <why>", or "not queued"."""
    rows = {row.dedup: row for row in await session.execute(
        select(OutboxMessage.dedup, OutboxMessage.status, OutboxMessage.last_error)
        .where(OutboxMessage.dedup.in_([dedup_of(e.id) for e in evidence])))}
    states: dict[int, str] = {}
    for e in evidence:
        row = rows.get(dedup_of(e.id))
        if e.fetched_at is not None:
            states[e.id] = "kept"
        elif row is None:
            states[e.id] = "not queued"
        elif row.status == FAILED:
            states[e.id] = f"failed: {row.last_error or 'unknown'}"
        elif row.status == PENDING:
            states[e.id] = "fetching" + (f" (last try: {row.last_error})" if row.last_error else "")
        else:  # done, yet nothing kept: the bytes were removed by hand
            states[e.id] = "not kept"
    return states


def file_name(receipt: str, number: int, evidence: TipEvidence) -> str:
    """A safe file name to save evidence as: `FF-2026-000123-1.jpg` (the sender's own name is not trusted)."""
    suffix = PurePosixPath(evidence.name.replace("\\", "/")).suffix.lower() if evidence.name else ""
    if not (suffix[1:].isascii() and suffix[1:].isalnum() and len(suffix) <= 8):  # (".图片" is alnum too)
        suffix = mimetypes.guess_extension(evidence.content_type or "") or ""
    return f"{receipt}-{number}{suffix}"


# -- senders ----------------------------------------------------------------------------------------------------------
def telegram_fetcher(bot: Bot, db: Database, vault: Vault, max_bytes: int, *,
                     timeout: float = DEFAULT_TIMEOUT) -> Sender:
    """Fetch a Telegram file (getFile, then the download) into its evidence row."""

    async def fetch(target: str, payload: dict[str, Any]) -> Outcome:
        wanted = await _wanted(db, target)
        if not isinstance(wanted, _Wanted):
            return wanted
        try:
            file = await bot.get_file(wanted.ref)
            if file.file_size is not None and file.file_size > max_bytes:
                return _too_large(file.file_size, max_bytes)
            data = bytes(await file.download_as_bytearray(read_timeout=timeout))
        except TelegramError as exc:  # e.g. an invalid file_id or a file too big for bots: failed for good
            return delivery_outcome(exc)
        if len(data) > max_bytes:
            return _too_large(len(data), max_bytes)
        content_type = _guessed_type(wanted.name) or _guessed_type(file.file_path) or _default_type(wanted.kind)
        return await _keep(db, vault, wanted, data, content_type)

    return fetch


def wechat_fetcher(api_base_url: str, token_provider: TokenProvider, db: Database, vault: Vault, max_bytes: int, *,
                   http: httpx.AsyncClient | None = None, timeout: float = DEFAULT_TIMEOUT) -> Sender:
    """Fetch WeChat temporary media (`GET /cgi-bin/media/get`) into its evidence row.

    `token_provider` is `WeChatApi.token`; `http` may be `WeChatApi.http` (absolute URLs are used, so its base URL
    does not matter; `timeout` replaces its own for downloads). Without `http`, each fetch opens its own client.
    """
    url = api_base_url.rstrip("/") + "/cgi-bin/media/get"

    async def fetch(target: str, payload: dict[str, Any]) -> Outcome:
        wanted = await _wanted(db, target)
        if not isinstance(wanted, _Wanted):
            return wanted
        try:
            if http is not None:
                got = await _wechat_media(http, url, wanted.ref, token_provider, max_bytes, timeout)
            else:
                async with httpx.AsyncClient(timeout=timeout) as client:
                    got = await _wechat_media(client, url, wanted.ref, token_provider, max_bytes, timeout)
        except (httpx.HTTPError, WeChatApiError) as exc:
            return Outcome.retry(exc.__class__.__name__)
        if isinstance(got, Outcome):
            return got
        data, content_type = got
        return await _keep(db, vault, wanted, data, content_type or _default_type(wanted.kind))

    return fetch


# -- internals --------------------------------------------------------------------------------------------------------
async def _wanted(db: Database, target: str) -> _Wanted | Outcome:
    """The evidence row to fetch; Outcome.sent() when it is kept already (a repeated fetch downloads nothing)."""
    try:
        evidence_id = int(target)
    except ValueError:
        return Outcome.failed("target is not an evidence id")
    async with db.session() as session:
        row = (await session.execute(select(TipEvidence.id, TipEvidence.kind, TipEvidence.ref, TipEvidence.name,
                                            TipEvidence.fetched_at).where(TipEvidence.id == evidence_id))).first()
    if row is None:
        return Outcome.failed("evidence row gone")
    if row.fetched_at is not None:
        return Outcome.sent()
    return _Wanted(row.id, row.kind, row.ref, row.name)


async def _keep(db: Database, vault: Vault, wanted: _Wanted, data: bytes, content_type: str) -> Outcome:
    """Store the bytes sealed (sealed before the write transaction: it can take a moment for a large file)."""
    sealed = vault.seal_bytes(data)
    async with db.transaction() as session:
        result = await session.execute(
            update(TipEvidence).where(TipEvidence.id == wanted.id, TipEvidence.fetched_at.is_(None))
            .values(content_sealed=sealed, content_type=content_type[:MAX_CONTENT_TYPE], fetched_at=utcnow(),
                    size=len(data))
            .execution_options(synchronize_session=False))
    if result.rowcount:
        log.info("evidence %d kept (%d bytes)", wanted.id, len(data))
    return Outcome.sent()


async def _wechat_media(client: httpx.AsyncClient, url: str, media_id: str, token_provider: TokenProvider,
                        max_bytes: int, seconds: float) -> tuple[bytes, str] | Outcome:
    """The media's bytes and content type, or what to do with the outbox row. An expired token is refreshed once."""
    token = await token_provider()
    for refreshed in (False, True):
        got = await _download(client, url, {"access_token": token, "media_id": media_id}, max_bytes, seconds)
        if isinstance(got, Outcome):
            return got
        data, content_type = got
        if not _is_json(data, content_type):
            return data, content_type
        try:
            body = json.loads(data)
        except ValueError:
            return Outcome.retry("unreadable JSON answer")
        if not isinstance(body, dict):
            return Outcome.retry("unexpected JSON answer")
        if body.get("video_url"):  # a video: WeChat answers where to download it from
            got = await _download(client, str(body["video_url"]), None, max_bytes, seconds)
            if isinstance(got, Outcome):
                return got
            data, content_type = got
            return data, content_type if content_type not in ("", OCTET_STREAM) else "video/mp4"
        try:
            code = int(body.get("errcode", 0))
        except (TypeError, ValueError):
            code = -1
        if code in TOKEN_ERRORS and not refreshed:
            token = await token_provider(force=True, stale=token)
            continue
        if code in WECHAT_GONE:
            return Outcome.failed(f"errcode {code}")
        return Outcome.retry(f"errcode {code}" if code else "unexpected JSON answer")
    raise AssertionError("unreachable")


async def _download(client: httpx.AsyncClient, url: str, params: dict[str, str] | None, max_bytes: int,
                    seconds: float) -> tuple[bytes, str] | Outcome:
    """GET the body, stopping as soon as it is larger than `max_bytes` (announced or counted)."""
    async with client.stream("GET", url, params=params, timeout=seconds) as res:
        if res.status_code >= 400:
            return Outcome.retry(f"HTTP {res.status_code}")
        declared = res.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes and "content-encoding" not in res.headers:
            return _too_large(int(declared), max_bytes)
        chunks: list[bytes] = []
        total = 0
        async for chunk in res.aiter_bytes():
            total += len(chunk)
            if total > max_bytes:
                return _too_large(None, max_bytes)
            chunks.append(chunk)
        return b"".join(chunks), _media_type(res.headers.get("content-type", ""))


def _is_json(data: bytes, content_type: str) -> bool:
    """WeChat answers errors (and videos) in JSON, as application/json or text/plain."""
    if content_type == "application/json" or content_type.startswith("text/"):
        return True
    return content_type in ("", OCTET_STREAM) and data[:1] == b"{" and len(data) < 4096


def _media_type(header: str) -> str:
    return header.split(";", 1)[0].strip().lower()


def _guessed_type(name: str | None) -> str | None:
    return mimetypes.guess_type(name)[0] if name else None


def _default_type(kind: str) -> str:
    return "image/jpeg" if kind == "image" else OCTET_STREAM


def _too_large(size: int | None, max_bytes: int) -> Outcome:
    """Refused for good (recorded in the outbox row): a larger limit needs a new fetch, not a retry."""
    return Outcome.failed(f"too large: {size} bytes, {max_bytes} allowed" if size is not None
                          else f"too large: more than the {max_bytes} bytes allowed")
