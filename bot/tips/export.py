"""The tip ledger as a spreadsheet (线索台账) in the columns a county office reports upward.

`build` makes the workbook from tips the caller selected; with a vault and an actor it adds the reporters' names and
contacts, each reveal written to the audit log in the caller's session (commit it only once the file is saved).
`save` (bot/spreadsheets.py) writes it so that a failed export leaves no half-written file.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.spreadsheets import add_sheet, new_workbook
from bot.storage.models import Tip, TipEvidence
from bot.tips import ledger
from bot.vault import Vault
from knowledge.schema import load_taxonomy

if TYPE_CHECKING:
    from openpyxl import Workbook

SHEET_TITLE = "线索台账"
HEADER = ("序号", "受理编号", "受理时间", "渠道", "线索类别", "乡镇", "村(社区)", "具体地点", "涉及主体",
          "涉及金额/人数", "发生时间", "线索内容", "证据数量", "是否实名", "办理状态", "办结情况", "承办人", "最近更新")
IDENTITY_HEADER = ("举报人姓名", "联系方式")
STATUS_NAMES = {"new": "待核查", "verifying": "核查中", "referred": "已移交", "closed": "已办结"}
REASON_NAMES = {"confirmed": "属实", "not-confirmed": "不属实", "duplicate": "重复", "out-of-scope": "不属于非法集资"}
CHANNEL_NAMES = {"telegram": "Telegram", "wechat": "微信公众号", "web": "网页", "local": "本地测试"}
# widest a column grows (in Latin character widths; a Chinese character counts two); wider text wraps
MAX_WIDTH = {"线索内容": 60, "涉及主体": 30, "具体地点": 30, "涉及金额/人数": 24, "发生时间": 20}

def local_time(moment: datetime | None) -> str:
    """"YYYY-MM-DD HH:MM" in Asia/Shanghai, the way the office writes times."""
    return ledger.as_utc(moment).astimezone(ledger.CHINA).strftime("%Y-%m-%d %H:%M") if moment is not None else ""


def status_name(status: str) -> str:
    return STATUS_NAMES.get(status, status)


def reason_name(reason: str | None) -> str:
    return REASON_NAMES.get(reason, reason) if reason else ""


async def evidence_counts(session: AsyncSession) -> dict[int, int]:
    rows = await session.execute(select(TipEvidence.tip_id, func.count(TipEvidence.id)).group_by(TipEvidence.tip_id))
    return {tip_id: n for tip_id, n in rows.all()}


async def build(session: AsyncSession, tips: Sequence[Tip], *, vault: Vault | None = None,
                actor: str | None = None) -> Workbook:
    """One sheet, one row per tip, a frozen Chinese header row. With `vault` and `actor` two identity columns are
    added: every named tip's identity is revealed through the ledger, so each is in the audit log (anonymous tips
    reveal nothing and write nothing)."""
    reveal = vault is not None
    if reveal and not actor:
        raise ValueError("revealing identities needs the actor who asked for them (for the audit log)")
    categories = {slug: c.name for slug, c in load_taxonomy().items()}
    counts = await evidence_counts(session)
    header = HEADER + (IDENTITY_HEADER if reveal else ())
    rows: list[list[str | int]] = []
    for number, tip in enumerate(tips, start=1):
        row: list[str | int] = [
            number, tip.receipt, local_time(tip.created_at), CHANNEL_NAMES.get(tip.channel, tip.channel),
            categories.get(tip.category, tip.category) if tip.category else "", tip.township or "",
            tip.village or "", tip.place or "", tip.who or "", tip.money or "", tip.happened or "", tip.what,
            counts.get(tip.id, 0), "匿名" if tip.anonymous else "实名", status_name(tip.status),
            reason_name(tip.closing_reason) if tip.status == "closed" else "", tip.assignee or "",
            local_time(tip.updated_at)]
        if vault is not None and actor:
            if tip.anonymous:
                row += ["", ""]
            else:
                identity = await ledger.reveal(session, vault, tip, actor)
                row += [identity.name or "", identity.contact or ""]
        rows.append(row)
    return _workbook(header, rows)


def _workbook(header: Sequence[str], rows: Sequence[Sequence[str | int]]) -> Workbook:
    book = new_workbook()
    add_sheet(book, SHEET_TITLE, header, rows, MAX_WIDTH)
    return book
